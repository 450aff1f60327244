"""A real OpenStack Swift for the functional tests.

Swift (from PyPI, in its own virtualenv made by
``tools/test-servers/install.sh``) runs as one account, one container, one
object and one proxy server (``workers = 0``: one process each), plus a
memcached for tempauth's tokens, all bound to 127.0.0.1 on free ports.
Rings (part power 10, one replica, one device) and the device directory
live in a temporary directory.

Swift reads ``/etc/swift/swift.conf`` at import time and has no option to
read it from elsewhere, so each server is run through a small launcher,
written next to the config, that points ``swift.common.utils`` at our
``swift.conf`` (and reloads the hash path salt, constraints and storage
policies from it) before it imports the server's ``main``.  The launcher
also sends Swift's logs to stderr (the server's log file) instead of
syslog.  Nothing is written outside the temporary directory.
"""

import os
import shutil
import signal
import subprocess
import uuid

import fixtures
from swiftclient import client as swift_client

from precache.tests import base
from precache.tests.functional import servers

START_TIMEOUT = 60
STOP_TIMEOUT = 15
BIND_TIMEOUT = 5
PART_POWER = 10
DEVICE = 'd1'
ACCOUNT = 'test'
USER = 'tester'
PROXY_PIPELINE = ('catch_errors proxy-logging cache tempurl tempauth '
                  'proxy-logging proxy-server')
#: The storage servers: name -> (server module, paste egg entry point).
STORAGE_SERVERS = {
    'account': ('swift.account.server', 'egg:swift#account'),
    'container': ('swift.container.server', 'egg:swift#container'),
    'object': ('swift.obj.server', 'egg:swift#object'),
}

LAUNCHER = '''\
"""Run a Swift server reading swift.conf from argv[1] instead of /etc."""

import importlib
import logging
import sys

from swift.common import utils
from swift.common.utils import logs


class StderrHandler(logging.StreamHandler):
    """Replaces Swift's syslog handler: logs go to stderr."""

    def __init__(self, address=None, facility=None):
        super().__init__(sys.stderr)


def main():
    swift_conf, module = sys.argv[1:3]
    utils.SWIFT_CONF_FILE = swift_conf
    utils.HASH_PATH_PREFIX = utils.HASH_PATH_SUFFIX = b''
    utils.validate_configuration()
    logs.ThreadSafeSysLogHandler = StderrHandler
    from swift.common import constraints
    from swift.common import storage_policy
    constraints.reload_constraints()
    storage_policy.reload_storage_policies()
    server = importlib.import_module(module)
    sys.argv = [module] + sys.argv[3:]
    server.main()


if __name__ == '__main__':
    main()
'''

RING_BUILDER = '''\
"""Run swift-ring-builder's create, add and rebalance for several rings.

Usage: build_rings.py DEVICE PART_POWER NAME:PORT...  (in the swift_dir)

Running swift-ring-builder's own main nine times in one interpreter saves
about two seconds of start-up over nine swift-ring-builder processes.
"""

import sys

from swift.cli import ringbuilder


def ring_builder(*args):
    try:
        ringbuilder.main(['swift-ring-builder'] + list(args))
    except SystemExit as exc:
        if exc.code:
            raise


def main():
    device, part_power = sys.argv[1:3]
    for ring in sys.argv[3:]:
        name, port = ring.split(':')
        builder = '%s.builder' % name
        ring_builder(builder, 'create', part_power, '1', '1')
        ring_builder(builder, 'add',
                     'r1z1-127.0.0.1:%s/%s' % (port, device), '1')
        ring_builder(builder, 'rebalance')


if __name__ == '__main__':
    main()
'''


def _check_xattrs(path):
    """Raise ServerError unless the file system of *path* has user xattrs."""
    probe = os.path.join(path, '.xattr-probe')
    open(probe, 'w').close()
    try:
        os.setxattr(probe, 'user.precache-test', b'1')
    except OSError as exc:
        raise servers.ServerError(
            'Swift needs extended attributes, but %s does not support them '
            '(%s); set $TMPDIR to a directory on ext4, xfs or tmpfs.'
            % (path, exc))
    finally:
        os.unlink(probe)


def _memcached_binary():
    """Return the path of memcached, or raise ServerError."""
    search = os.pathsep.join([os.environ.get('PATH', os.defpath),
                              '/usr/bin', '/usr/sbin'])
    path = shutil.which('memcached', path=search)
    if not path:
        raise servers.ServerError(
            'memcached is not installed; tempauth needs it '
            '(apt-get install -y memcached).')
    return path


class SwiftServerFixture(fixtures.Fixture):
    """Start a Swift cluster (proxy with tempauth) for a test.

    :ivar auth_url: tempauth's v1 URL, ``http://127.0.0.1:PORT/auth/v1.0``.
    :ivar user: the tempauth user, ``test:tester`` (an ``.admin``).
    :ivar key: the user's key.
    :ivar storage_url: the account's URL, ``.../v1/AUTH_test``.
    :ivar token: a valid auth token for :attr:`storage_url`.
    :ivar base_dir: the temporary directory holding config, data and logs.
    """

    def __init__(self, key=None):
        super(SwiftServerFixture, self).__init__()
        self.key = key or uuid.uuid4().hex
        self.user = '%s:%s' % (ACCOUNT, USER)
        self.processes = {}

    def _setUp(self):
        self.venv = servers.find_venv('swift')
        self.memcached = _memcached_binary()
        self.base_dir = self.useFixture(fixtures.TempDir()).path
        self.etc_dir = self._make_dir('etc')
        self.log_dir = self._make_dir('log')
        self.devices = self._make_dir('srv', 'node')
        self._make_dir('srv', 'node', DEVICE)
        _check_xattrs(self.devices)
        names = ('memcached', 'proxy') + tuple(STORAGE_SERVERS)
        self.ports = self.useFixture(base.ReservedPorts(names)).ports
        self.proxy_url = 'http://127.0.0.1:%d' % self.ports['proxy']
        self.auth_url = self.proxy_url + '/auth/v1.0'

        self._write_config()
        self._build_rings()
        self.addCleanup(self._stop_all)
        self._start_memcached()
        self._start_swift_servers()
        self.storage_url, self.token = self._authenticate()

    # -- layout and configuration ------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.base_dir, *parts)

    def _make_dir(self, *parts):
        path = self._path(*parts)
        os.makedirs(path, exist_ok=True)
        return path

    def _etc(self, name):
        return os.path.join(self.etc_dir, name)

    def _defaults(self, name):
        """Return the [DEFAULT] section shared by every server's config."""
        return {
            'bind_ip': '127.0.0.1',
            'bind_port': str(self.ports[name]),
            'workers': '0',
            'bind_timeout': str(BIND_TIMEOUT),
            'swift_dir': self.etc_dir,
            'devices': self.devices,
            'mount_check': 'false',
            'disable_fallocate': 'true',
            'log_name': '%s-server' % name,
            'log_level': 'INFO',
        }

    def _write_config(self):
        """Write swift.conf, the launcher and every server's config."""
        servers.write_ini(self._etc('swift.conf'), {
            'swift-hash': {'swift_hash_path_suffix': uuid.uuid4().hex,
                           'swift_hash_path_prefix': uuid.uuid4().hex},
            'storage-policy:0': {'name': 'Policy-0', 'default': 'yes'},
        })
        for name, text in (('launcher.py', LAUNCHER),
                           ('build_rings.py', RING_BUILDER)):
            with open(self._etc(name), 'w') as f:
                f.write(text)
        for name, (_module, egg) in STORAGE_SERVERS.items():
            app = '%s-server' % name
            servers.write_ini(self._etc('%s-server.conf' % name), {
                'DEFAULT': self._defaults(name),
                'pipeline:main': {'pipeline': app},
                'app:%s' % app: {'use': egg},
            })
        self._write_proxy_config()

    def _write_proxy_config(self):
        """Write proxy-server.conf: tempauth, tempurl and memcache."""
        servers.write_ini(self._etc('proxy-server.conf'), {
            'DEFAULT': self._defaults('proxy'),
            'pipeline:main': {'pipeline': PROXY_PIPELINE},
            'app:proxy-server': {'use': 'egg:swift#proxy',
                                 'account_autocreate': 'true'},
            'filter:catch_errors': {'use': 'egg:swift#catch_errors'},
            'filter:proxy-logging': {'use': 'egg:swift#proxy_logging'},
            'filter:cache': {
                'use': 'egg:swift#memcache',
                'memcache_servers': '127.0.0.1:%d' % self.ports['memcached'],
            },
            'filter:tempurl': {'use': 'egg:swift#tempurl'},
            'filter:tempauth': {
                'use': 'egg:swift#tempauth',
                'user_%s_%s' % (ACCOUNT, USER): '%s .admin' % self.key,
            },
        })

    def _bin(self, name):
        """Return the path of program *name* in Swift's virtualenv."""
        return os.path.join(self.venv, 'bin', name)

    def _env(self):
        """Return the environment of Swift's processes (no venv leaks)."""
        env = dict(os.environ)
        for name in ('PYTHONHOME', 'PYTHONPATH', 'VIRTUAL_ENV',
                     '__PYVENV_LAUNCHER__'):
            env.pop(name, None)
        return env

    def _build_rings(self):
        """Build one ring per storage server: one device, one replica."""
        log_file = os.path.join(self.log_dir, 'ring-builder.log')
        args = ['%s:%d' % (name, self.ports[name]) for name in STORAGE_SERVERS]
        with open(log_file, 'ab') as log:
            rc = subprocess.call(
                [self._bin('python'), self._etc('build_rings.py'), DEVICE,
                 str(PART_POWER)] + args,
                env=self._env(), cwd=self.etc_dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
        if rc:
            raise servers.ServerError(
                'building the rings failed (status %s):\n%s'
                % (rc, servers.log_tail(log_file)))

    # -- processes ----------------------------------------------------------

    def _log_file(self, name):
        return os.path.join(self.log_dir, '%s.log' % name)

    def _spawn(self, name, cmd):
        """Start *cmd* in its own session, output to ``log/NAME.log``."""
        with open(self._log_file(name), 'ab') as log:
            self.processes[name] = subprocess.Popen(
                cmd, env=self._env(), cwd=self.base_dir,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        return self.processes[name]

    def _failed(self, name, exc):
        """Return a ServerError for *name* with the tail of its log."""
        return servers.ServerError(
            '%s did not start: %s\n--- %s (tail) ---\n%s'
            % (name, exc, self._log_file(name),
               servers.log_tail(self._log_file(name))))

    def _wait_port(self, name):
        """Wait until the server *name* listens on its port."""
        try:
            servers.wait_for_port(self.ports[name], timeout=START_TIMEOUT,
                                  process=self.processes[name])
        except servers.ServerError as exc:
            raise self._failed(name, exc)

    def _start_memcached(self):
        """Start memcached on its own loopback port (for tempauth)."""
        cmd = [self.memcached, '-l', '127.0.0.1',
               '-p', str(self.ports['memcached']), '-U', '0', '-m', '64']
        if os.geteuid() == 0:
            # memcached refuses to run as root without -u.
            cmd += ['-u', 'root']
        self._spawn('memcached', cmd)
        self._wait_port('memcached')

    def _launch(self, name, module):
        """Start a Swift server through the launcher."""
        return self._spawn(name, [
            self._bin('python'), self._etc('launcher.py'),
            self._etc('swift.conf'), module,
            self._etc('%s-server.conf' % name)])

    def _start_swift_servers(self):
        """Start all four servers at once, then wait until they answer.

        The proxy is ready when tempauth answers on the auth URL.
        """
        for name, (module, _egg) in STORAGE_SERVERS.items():
            self._launch(name, module)
        proxy = self._launch('proxy', 'swift.proxy.server')
        for name in STORAGE_SERVERS:
            self._wait_port(name)
        try:
            servers.wait_for_http(self.auth_url, timeout=START_TIMEOUT,
                                  process=proxy)
        except servers.ServerError as exc:
            raise self._failed('proxy', exc)

    def _authenticate(self):
        """Return (storage URL, token) from tempauth."""
        try:
            return swift_client.get_auth(self.auth_url, self.user, self.key,
                                         auth_version='1')
        except swift_client.ClientException as exc:
            raise self._failed('proxy', exc)

    def _stop(self, name):
        """Stop the process *name* and anything left in its session."""
        process = self.processes.pop(name)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=STOP_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                continue

    def _stop_all(self):
        """Stop the proxy first, then the storage servers and memcached."""
        for name in ('proxy',) + tuple(STORAGE_SERVERS) + ('memcached',):
            if name in self.processes:
                self._stop(name)

    # -- clients ------------------------------------------------------------

    def connection(self, retries=1):
        """Return a swiftclient Connection authenticated as :attr:`user`."""
        return swift_client.Connection(
            authurl=self.auth_url, user=self.user, key=self.key,
            auth_version='1', retries=retries,
            preauthurl=self.storage_url, preauthtoken=self.token)

    def set_tempurl_key(self, key):
        """Set the account's TempURL key (``X-Account-Meta-Temp-URL-Key``)."""
        self.connection().post_account({'X-Account-Meta-Temp-URL-Key': key})
