"""A RabbitMQ broker for the functional tests.

When ``$PRECACHE_TEST_TRANSPORT_URL`` is set the tests use that broker and
nothing is started.  Otherwise :class:`RabbitMQFixture` starts a private
node of the Debian ``rabbitmq-server`` package: its own node name, AMQP
port, distribution port and epmd, all bound to 127.0.0.1, with every piece
of state (Mnesia, logs, Erlang cookie) in a temporary directory.  A broker
the machine already runs (port 5672, epmd on 4369) is never touched: the
system ``/etc/rabbitmq`` files are replaced by empty ones of our own,
because the stock ``rabbitmq.conf`` would add a listener on 5672.  The
Erlang distribution of the node and of every ``rabbitmqctl`` run is bound
to 127.0.0.1 too (rabbitmqctl would otherwise listen on 0.0.0.0).
"""

import os
import shutil
import signal
import subprocess
import uuid

import fixtures

from precache.tests.functional import servers

#: Environment variable naming an existing broker to use instead.
TRANSPORT_URL_ENV = 'PRECACHE_TEST_TRANSPORT_URL'
#: Where Debian installs the RabbitMQ scripts.
RABBITMQ_BIN_DIR = '/usr/lib/rabbitmq/bin'
START_TIMEOUT = 60
STOP_TIMEOUT = 30
LOG_ERROR_LINES = 15
# Variables of the caller's environment that would leak into our node.
_INHERITED_PREFIXES = ('RABBITMQ_', 'ERL_')
# Every rabbitmqctl run listens for Erlang distribution on a port of this
# range (RabbitMQ's default CTL_DIST_PORT_MIN/MAX); a node port picked in
# it would race our own "rabbitmqctl wait" and fail with eaddrinuse.
_CTL_DIST_PORTS = range(35672, 35683)
_LOOPBACK_DIST = '-kernel inet_dist_use_interface {127,0,0,1}'


def _log_errors(path, lines=LOG_ERROR_LINES):
    """Return the first *lines* error lines of a RabbitMQ log file.

    A node that fails logs its reason (say ``eaddrinuse``) well before the
    many lines of its shutdown, so the tail alone rarely shows it.
    """
    try:
        with open(path, errors='replace') as f:
            errors = [line for line in f
                      if '[error]' in line or '[critical]' in line]
    except OSError:
        return ''
    return ''.join(errors[:lines])


def _free_port():
    """Return a free loopback port outside rabbitmqctl's own range."""
    while True:
        port = servers.free_port()
        if port not in _CTL_DIST_PORTS:
            return port


def _epmd_binary():
    """Return the path of Erlang's ``epmd``."""
    return shutil.which('epmd') or '/usr/lib/erlang/bin/epmd'


class RabbitMQFixture(fixtures.Fixture):
    """Provide a RabbitMQ broker for the duration of a test.

    :ivar transport_url: an oslo.messaging transport URL for the broker.
    :ivar port: the AMQP port of the private node (None for an external one).
    :ivar node: the private node's name (None for an external one).
    :ivar base_dir: the temporary directory holding the node's state.
    :ivar log_file: the node's main log file.

    :param address: the address AMQP clients connect to. Anything but
        127.0.0.1 (say an address in a network namespace of a testbed)
        also lets the ``guest`` user connect from other hosts.
    """

    def __init__(self, address='127.0.0.1'):
        super(RabbitMQFixture, self).__init__()
        self.address = address
        self.transport_url = None
        self.port = None
        self.node = None
        self._started = False

    def _setUp(self):
        external = os.environ.get(TRANSPORT_URL_ENV)
        if external:
            self.transport_url = external
            return
        self._check_installed()
        self._prepare()
        self._start()
        self.transport_url = 'rabbit://guest:guest@%s:%d/' % (self.address,
                                                              self.port)

    # -- layout and configuration ------------------------------------------

    @staticmethod
    def _bin(name):
        return os.path.join(RABBITMQ_BIN_DIR, name)

    def _check_installed(self):
        if not os.access(self._bin('rabbitmq-server'), os.X_OK):
            raise servers.ServerError(
                'rabbitmq-server not found in %s: install the Debian '
                'package "rabbitmq-server", or set $%s to the URL of an '
                'existing broker.' % (RABBITMQ_BIN_DIR, TRANSPORT_URL_ENV))

    def _path(self, *parts):
        return os.path.join(self.base_dir, *parts)

    def _prepare(self):
        """Pick the node's name and ports and write its (empty) config."""
        self.base_dir = self.useFixture(fixtures.TempDir()).path
        self.node = 'precache-test-%s@localhost' % uuid.uuid4().hex[:8]
        self.port = _free_port()
        self.dist_port = _free_port()
        self.epmd_port = _free_port()
        self.pid_file = self._path('rabbitmq.pid')
        self.log_file = self._path('log', '%s.log' % self.node)
        self.startup_log = self._path('startup.log')
        os.makedirs(self._path('log'))
        # Our own, empty, files instead of the ones in /etc/rabbitmq.
        for name in ('rabbitmq-env.conf', 'rabbitmq.conf'):
            open(self._path(name), 'w').close()
        if self.address != '127.0.0.1':
            with open(self._path('rabbitmq.conf'), 'w') as f:
                f.write('loopback_users = none\n')
        with open(self._path('enabled_plugins'), 'w') as f:
            f.write('[].\n')

    def _env(self):
        """Return the environment of the node and of rabbitmqctl."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(_INHERITED_PREFIXES)}
        env.update({
            'HOME': self.base_dir,
            'RABBITMQ_NODENAME': self.node,
            'RABBITMQ_NODE_IP_ADDRESS': self.address,
            'RABBITMQ_NODE_PORT': str(self.port),
            'RABBITMQ_DIST_PORT': str(self.dist_port),
            'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': _LOOPBACK_DIST,
            'RABBITMQ_CTL_ERL_ARGS': _LOOPBACK_DIST,
            'ERL_EPMD_PORT': str(self.epmd_port),
            'ERL_EPMD_ADDRESS': '127.0.0.1',
            'RABBITMQ_CONF_ENV_FILE': self._path('rabbitmq-env.conf'),
            'RABBITMQ_CONFIG_FILE': self._path('rabbitmq.conf'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': self._path('enabled_plugins'),
            'RABBITMQ_MNESIA_BASE': self._path('mnesia'),
            'RABBITMQ_LOG_BASE': self._path('log'),
            'RABBITMQ_PID_FILE': self.pid_file,
        })
        return env

    # -- processes ----------------------------------------------------------

    def _run(self, args, timeout):
        """Run a RabbitMQ/Erlang command, its output going to the log.

        :returns: the exit status, or None if it timed out.
        """
        with open(self.startup_log, 'ab') as log:
            try:
                return subprocess.call(
                    args, env=self._env(), cwd=self.base_dir,
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                return None

    def _ctl(self, *args, timeout=STOP_TIMEOUT):
        """Run ``rabbitmqctl -n NODE ARGS...``; return its exit status."""
        return self._run([self._bin('rabbitmqctl'), '-n', self.node]
                         + list(args), timeout)

    def _start(self):
        """Start the node detached and wait until RabbitMQ runs on it."""
        self.addCleanup(self._stop)
        self._started = True
        rc = self._run([self._bin('rabbitmq-server'), '-detached'],
                       timeout=START_TIMEOUT)
        if rc == 0:
            rc = self._ctl('wait', self.pid_file,
                           '--timeout', str(START_TIMEOUT),
                           timeout=START_TIMEOUT + 10)
        if rc != 0:
            raise servers.ServerError(
                'RabbitMQ node %s did not start (status %s)\n'
                '--- %s (tail) ---\n%s--- %s (first errors) ---\n%s'
                '--- %s (tail) ---\n%s'
                % (self.node, rc, self.startup_log,
                   servers.log_tail(self.startup_log), self.log_file,
                   _log_errors(self.log_file), self.log_file,
                   servers.log_tail(self.log_file)))

    def _node_pid(self):
        """Return the node's OS pid from its pid file, or None."""
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _kill_node(self):
        """Kill the node's VM outright (when a clean stop failed)."""
        pid = self._node_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stop(self):
        """Stop the node, then the epmd started for it (on its own port)."""
        if not self._started:
            return
        self._started = False
        if self._ctl('stop', self.pid_file) != 0:
            self._kill_node()
        self._run([_epmd_binary(), '-port', str(self.epmd_port), '-kill'],
                  timeout=STOP_TIMEOUT)
