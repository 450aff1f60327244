"""A Squid cache proxy configured by precache's sample configuration.

:class:`SquidFixture` renders ``etc/squid/precache-squid.conf`` by
replacing its documented placeholders only, and runs Debian's ``squid``
in the foreground (one process) with every file in a directory of its
own. The testbed (``tools/testbed``) runs the same fixture inside a
network namespace.
"""

import os
import re
import shutil
import signal
import subprocess

import fixtures

from precache.tests.functional import servers

#: The sample configuration, as shipped.
SAMPLE_CONFIG = os.path.join(servers._REPO_ROOT, 'etc', 'squid',
                             'precache-squid.conf')
SQUID = '/usr/sbin/squid'
#: The user Debian's Squid switches to when started as root.
SQUID_USER = 'proxy'
START_TIMEOUT = 60
STOP_TIMEOUT = 15
_PLACEHOLDER = re.compile(r'@([A-Z_]+)@')


def render_config(values, sample=SAMPLE_CONFIG):
    """Return the sample configuration with its placeholders replaced.

    :param values: ``{placeholder name: value}``, every placeholder of the
        sample and nothing else.
    :raises ServerError: a placeholder is missing or unknown.
    """
    with open(sample) as f:
        text = f.read()
    wanted = set(_PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise servers.ServerError(
            '%s has placeholders %s, got values for %s'
            % (sample, sorted(wanted), sorted(values)))
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


class SquidFixture(fixtures.Fixture):
    """Run one Squid cache proxy.

    :param base_dir: directory under which its state directory is made.
    :param address: the address to listen on.
    :param port: the port to listen on.
    :param client_network: CIDR of the clients allowed to use it.
    :param cache_dir_mb: size of its disk cache.
    :param exec_prefix: command prefix to run Squid with (say
        ``ip netns exec NS``).
    :ivar url: the proxy's URL, for ``[agent] proxies``.
    :ivar access_log: path of its access log.
    """

    def __init__(self, base_dir, address='127.0.0.1', port=None,
                 client_network='127.0.0.0/8', cache_dir_mb=4096,
                 exec_prefix=()):
        super().__init__()
        self.base_dir = base_dir
        self.address = address
        self.port = port
        self.client_network = client_network
        self.cache_dir_mb = cache_dir_mb
        self.exec_prefix = list(exec_prefix)
        self.process = None

    def _setUp(self):
        if not os.access(SQUID, os.X_OK):
            raise servers.ServerError(
                '%s not found: install the Debian package "squid"' % SQUID)
        if self.port is None:
            self.port = servers.free_port()
        self.state_dir = os.path.join(
            self.base_dir, 'squid-%s-%d' % (self.address, self.port))
        os.makedirs(self.state_dir)
        self._open_path_to(self.state_dir)
        shutil.chown(self.state_dir, SQUID_USER, SQUID_USER)
        self.config_file = os.path.join(self.state_dir, 'squid.conf')
        with open(self.config_file, 'w') as f:
            f.write(render_config({
                'HTTP_PORT': '%s:%d' % (self.address, self.port),
                'CLIENT_NETWORK': self.client_network,
                'STATE_DIR': self.state_dir,
                'CACHE_DIR_MB': self.cache_dir_mb}))
        self.access_log = os.path.join(self.state_dir, 'access.log')
        self.cache_log = os.path.join(self.state_dir, 'cache.log')
        self.url = 'http://%s:%d' % (self.address, self.port)
        self._squid('-z')
        self.addCleanup(self._stop)
        self.process = subprocess.Popen(
            self.exec_prefix + [SQUID, '-N', '-f', self.config_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            servers.wait_for_port(self.port, self.address, START_TIMEOUT,
                                  self.process)
        except servers.ServerError as exc:
            raise servers.ServerError('Squid did not start: %s\n%s'
                                      % (exc, self.log_tail()))

    @staticmethod
    def _open_path_to(path):
        """Let Squid's user traverse the directories above ``path``."""
        parent = os.path.dirname(path)
        while parent not in ('/', ''):
            mode = os.stat(parent).st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
            parent = os.path.dirname(parent)

    def _squid(self, *args):
        proc = subprocess.run(
            self.exec_prefix + [SQUID, '-N', '-f', self.config_file] +
            list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=START_TIMEOUT)
        if proc.returncode != 0:
            raise servers.ServerError('squid %s failed: %s\n%s'
                                      % (' '.join(args), proc.stdout,
                                         self.log_tail()))

    def _stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines=30):
        return servers.log_tail(self.cache_log, lines)

    def access_entries(self):
        """Return the access log's entries as lists of fields.

        Squid's native format: time, elapsed, client, result code/status,
        bytes, method, URL, user, hierarchy code/peer, type. Connections
        closed before a request (the readiness probe's) are left out.
        """
        try:
            with open(self.access_log) as f:
                entries = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [e for e in entries if len(e) > 5 and e[5] != '-']
