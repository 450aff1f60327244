"""Real OpenStack services started by the functional tests.

The services run from their own virtualenvs, created by
``tools/test-servers/install.sh``; this package holds the fixtures that
configure and start them, plus a few helpers shared by those fixtures.
"""

import configparser
import os
import socket
import time
import urllib.error
import urllib.request

#: Environment variable naming the directory made by install.sh.
SERVERS_ENV = 'PRECACHE_TEST_SERVERS'

_REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


class ServerError(Exception):
    """A test server could not be found, configured or started."""


def servers_dir():
    """Return the directory holding the test servers' virtualenvs."""
    default = os.path.join(_REPO_ROOT, '.tox', 'test-servers')
    return os.path.abspath(os.environ.get(SERVERS_ENV) or default)


def find_venv(name):
    """Return the path of the installed virtualenv for service *name*.

    :raises ServerError: when it has not been installed.
    """
    base = servers_dir()
    venv = os.path.join(base, name)
    if not os.path.exists(os.path.join(venv, '.installed')):
        raise ServerError(
            '%(name)s is not installed in %(venv)s; run '
            '"tools/test-servers/install.sh %(base)s" first, or point '
            '$%(env)s at a directory where it was run.'
            % {'name': name, 'venv': venv, 'base': base, 'env': SERVERS_ENV})
    return venv


def free_port():
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _check_alive(process):
    if process is not None and process.poll() is not None:
        raise ServerError('process exited with status %s'
                          % process.returncode)


def wait_for_port(port, host='127.0.0.1', timeout=60.0, process=None):
    """Wait until something accepts TCP connections on *host*:*port*.

    :param process: optional ``subprocess.Popen``; give up early if it exits.
    :raises ServerError: on timeout or when *process* exits.
    """
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(process)
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ServerError('nothing listens on %s:%s after %ss'
                                  % (host, port, timeout))
            time.sleep(0.1)


def _http_status(url):
    """Return the HTTP status of GET *url*, or None if it did not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def wait_for_http(url, timeout=60.0, process=None):
    """Wait until GET *url* answers with a status below 500.

    :param process: optional ``subprocess.Popen``; give up early if it exits.
    :returns: the HTTP status code.
    :raises ServerError: on timeout or when *process* exits.
    """
    deadline = time.monotonic() + timeout
    status = None
    while True:
        _check_alive(process)
        status = _http_status(url)
        if status is not None and status < 500:
            return status
        if time.monotonic() > deadline:
            raise ServerError('%s did not answer after %ss (last status %s)'
                              % (url, timeout, status))
        time.sleep(0.2)


def log_tail(path, lines=40):
    """Return the last *lines* lines of the file at *path*."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError as exc:
        return '(no log: %s)' % exc


def write_ini(path, sections):
    """Write ``{section: {key: value}}`` as an ini file at *path*."""
    parser = configparser.RawConfigParser()
    parser.optionxform = str
    parser.read_dict(sections)
    with open(path, 'w') as f:
        parser.write(f)
