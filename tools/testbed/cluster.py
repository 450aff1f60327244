"""precache's real processes on a testbed network (:mod:`netns`).

The calling process moves into the control node's namespace
(:func:`netns.enter`) and runs there: a private RabbitMQ listening on the
control node's address, the service's RPC endpoint that receives the
agents' reports, and the casts. The origin node runs the service's server
side (``origin.py``), each proxy node a Squid configured by
``etc/squid/precache-squid.conf``, each host node a real
``precache-agent`` process with a Nova-style store of its own.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time

from oslo_config import cfg

# First: oslo.service's threading backend and precache's warning filters.
from precache import cmd  # noqa: F401
from precache.agent import rpcapi as agent_rpcapi  # noqa: H306
from precache.common import rpc
import precache.conf  # noqa: F401 (registers the options)
from precache.objects import signing
from precache.objects import states
from precache.tests import fixtures as servers
from precache.tests.fixtures import control_plane
from precache.tests.fixtures import rabbitmq
from precache.tests.fixtures import squid

import netns

ORIGIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             'origin.py')
#: The checkout's Squid sample (the tools run from a checkout, whichever
#: way precache itself is installed).
SQUID_SAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'etc', 'squid', 'precache-squid.conf')
ORIGIN_PORT = 8780
PROXY_PORT = 3128
START_TIMEOUT = 300
#: oslo.log's default line start: date, time and milliseconds.
_LOG_TIME = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ')


def landing_seconds(log_file, image_id):
    """Return how long an agent took to land ``image_id`` once downloaded.

    The time from the agent's log line that ends the download (the last
    byte received, decompressed and hashed: the sources stream) to the one
    that says the image is cached: the checks, the conversion to raw and
    the rename, on this host's CPU and disk. None if the log lacks either.
    """
    downloaded = 'Image %s: ' % image_id
    cached = 'Image %s cached in ' % image_id
    start = None
    with open(log_file, errors='replace') as f:
        for line in f:
            if downloaded in line and ' received) from ' in line:
                start = _log_time(line)
            elif cached in line and start is not None:
                end = _log_time(line)
                return (end - start).total_seconds() if end else None
    return None


def _log_time(line):
    """Return the time an oslo.log line starts with, or None."""
    match = _LOG_TIME.match(line)
    return match and datetime.datetime.strptime(match.group(1),
                                                '%Y-%m-%d %H:%M:%S.%f')


class CpuMonitor(object):
    """Samples the machine's CPU utilisation once a second."""

    def __init__(self, interval=1.0):
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def _read():
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    def __enter__(self):
        self._start = self._read()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        last = self._read()
        while not self._stop.wait(self.interval):
            now = self._read()
            self.samples.append(_busy(last, now))
            last = now

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.average = _busy(self._start, self._read())
        self.peak = max(self.samples, default=self.average)


def _busy(before, after):
    total = after[0] - before[0]
    idle = after[1] - before[1]
    return 100.0 * (total - idle) / total if total else 0.0


class NamespacedAgent(control_plane.AgentProcessFixture):
    """A real ``precache-agent`` process inside a host node."""

    def __init__(self, node, messaging_fixture, base_dir, options):
        super().__init__(messaging_fixture, node.short, base_dir, options)
        self.node = node

    def start(self):
        self.process = subprocess.Popen(
            self.node.exec_args([sys.executable, '-m', 'precache.cmd.agent',
                                 '--config-file', self.config_file]),
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)


class Round(object):
    """One distribution round: fresh topics, endpoint and agents.

    :param cluster: the :class:`Cluster`.
    :param name: the round's name (a directory under the work dir).
    :param agent_options: ``{group: {option: value}}`` for every agent.
    """

    def __init__(self, cluster, name, agent_options):
        self.cluster = cluster
        self.base_dir = os.path.join(cluster.work_dir, name)
        self.agent_options = agent_options
        self.arrivals = {}
        #: Reports of other images are ignored when set (:meth:`expect`).
        self.image_id = None
        self.agents = []
        self._lock = threading.Condition()
        self._fixtures = []

    def _use(self, fixture):
        fixture.setUp()
        self._fixtures.append(fixture)
        return fixture

    def __enter__(self):
        try:
            self.messaging = self._use(control_plane.MessagingFixture(
                self.cluster.broker.transport_url))
            self.endpoint = self._use(
                control_plane.ServiceEndpointFixture(cfg.CONF))
            self.endpoint.manager.add_listener(self._on_message)
            self.api = agent_rpcapi.AgentAPI(cfg.CONF)
            # The messaging fixture made a key pair; agents trust it.
            self.signer = signing.signer_from_conf(cfg.CONF)
            os.makedirs(self.base_dir)
            self.agents = [
                self._use(NamespacedAgent(node, self.messaging,
                                          self.base_dir, self.agent_options))
                for node in self.cluster.testbed.hosts]
            for agent in self.agents:
                self.endpoint.wait_for_heartbeat(agent.host, START_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        # Every agent stops at once; the clean-ups below then wait.
        for fixture in self._fixtures:
            if isinstance(fixture, NamespacedAgent):
                fixture.terminate()
        while self._fixtures:
            self._fixtures.pop().cleanUp()

    def _on_message(self, kind, host, payload):
        # A host has arrived with its answer: cached, existing or failed;
        # not with the report that it started downloading.
        if kind != 'report' or payload['status'] in states.IN_PROGRESS:
            return
        with self._lock:
            if self.image_id and payload.get('image_id') != self.image_id:
                return
            self.arrivals[host] = (time.monotonic(), payload)
            self._lock.notify_all()

    def expect(self, image_id):
        """Forget the arrivals so far; count reports of ``image_id`` only."""
        with self._lock:
            self.image_id = image_id
            self.arrivals = {}

    def landing_seconds(self, image_id):
        """Return ``{host: seconds}``: each agent's :func:`landing_seconds`."""
        found = {agent.host: landing_seconds(agent.log_file, image_id)
                 for agent in self.agents if os.path.exists(agent.log_file)}
        return {host: s for host, s in found.items() if s is not None}

    def cast(self, image_id, meta, host=None):
        """Cast ``cache`` of ``meta``, signed; return when it was sent."""
        meta = self.signer.sign(meta)
        sent = time.monotonic()
        self.api.cache(rpc.get_context(), image_id, meta, host=host)
        return sent

    def wait(self, hosts, timeout):
        """Wait until each of ``hosts`` reported, at most ``timeout`` s.

        :returns: ``{host: (monotonic arrival, report)}`` of those that did.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not set(hosts) <= set(self.arrivals):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return {h: self.arrivals[h] for h in hosts if h in self.arrivals}


class Cluster(object):
    """The processes running on a testbed.

    :param testbed: a created :class:`netns.Testbed`; the calling process
        must already be in its control node (:func:`netns.enter`).
    :param work_dir: where configs, logs, stores and caches go.
    :param images_dir: directory of the images to serve (file name = id).
    """

    def __init__(self, testbed, work_dir, images_dir):
        self.testbed = testbed
        self.work_dir = work_dir
        self.images_dir = images_dir
        self.broker = None
        self._origin = None
        self._squids = []

    def start_broker(self):
        cfg.CONF([], project='precache', default_config_files=[])
        self.broker = rabbitmq.RabbitMQFixture(self.testbed.ctl.address)
        self.broker.setUp()

    def stop(self):
        self.stop_squids()
        self.stop_origin()
        if self.broker is not None:
            self.broker.cleanUp()
            self.broker = None

    # -- origin -----------------------------------------------------------

    @property
    def origin_url(self):
        return 'http://%s:%d' % (self.testbed.origin.address, ORIGIN_PORT)

    def start_origin(self, server, extra_config=None, piece_size_kb=1024,
                     images_dir=None, name=None, options=None,
                     origin_args=()):
        """Start the service's server side with ImageServer ``server``.

        The ``bittorrent`` server seeds on the origin's address with
        pieces of ``piece_size_kb``; ``extra_config`` (a config file) can
        set any other option.

        :param images_dir: the images to serve; the cluster's by default.
        :param name: names the origin's directory (``origin-<name>``,
            ``server`` by default): a new name, a new database.
        :param options: more ``{group: {option: value}}``.
        :param origin_args: more arguments of ``origin.py``.
        :returns: ``{image id: meta}`` as the service would cast it.
        """
        self.stop_origin()
        images_dir = images_dir or self.images_dir
        directory = os.path.join(self.work_dir, 'origin-%s' % (name or
                                                               server))
        os.makedirs(directory, exist_ok=True)
        config = os.path.join(directory, 'origin.conf')
        meta_file = os.path.join(directory, 'meta.json')
        groups = {
            'DEFAULT': {'host': 'origin', 'log_file':
                        os.path.join(directory, 'origin.log')},
            'service': {'listers': 'directory', 'fetcher': 'file',
                        'server': server, 'staging_dir':
                        os.path.join(self.work_dir, 'staging')},
            'directory_lister': {'path': images_dir},
            'file_fetcher': {'image_dir': images_dir},
            'http_server': {'document_root':
                            os.path.join(self.work_dir, 'www'),
                            'bind_host': self.testbed.origin.address,
                            'bind_port': ORIGIN_PORT,
                            'base_url': self.origin_url},
            'bittorrent_server': {'listen_host': self.testbed.origin.address,
                                  'piece_size_kb': piece_size_kb},
        }
        for group, values in (options or {}).items():
            groups.setdefault(group, {}).update(values)
        control_plane.write_config(config, groups)
        args = ['--config-file', config]
        if extra_config:
            args += ['--config-file', extra_config]
        self._origin = subprocess.Popen(
            self.testbed.origin.exec_args(
                [sys.executable, ORIGIN_SCRIPT] + args +
                ['--meta-file', meta_file] + list(origin_args)),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(directory, 'stderr.log'), 'w'),
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(meta_file):
            if self._origin.poll() is not None:
                raise netns.TestbedError(
                    'the origin (%s) exited with %d:\n%s' % (
                        server, self._origin.returncode, servers.log_tail(
                            os.path.join(directory, 'origin.log'))))
            if time.monotonic() > deadline:
                raise netns.TestbedError('the origin did not serve in %ds'
                                         % START_TIMEOUT)
            time.sleep(0.2)
        with open(meta_file) as f:
            return json.load(f)

    def stop_origin(self):
        control_plane.stop_process(self._origin, 30)

    # -- proxies ----------------------------------------------------------

    def start_squids(self):
        """Start a cold Squid on every proxy node; return their URLs."""
        self.stop_squids()
        base = os.path.join(self.work_dir, 'squid-%d' % time.monotonic_ns())
        os.makedirs(base)
        for node in self.testbed.proxies:
            fixture = squid.SquidFixture(
                base, address=node.address, port=PROXY_PORT,
                client_network=netns.NETWORK, exec_prefix=node.exec_args([]),
                sample=SQUID_SAMPLE)
            fixture.setUp()
            self._squids.append(fixture)
        return [s.url for s in self._squids]

    def stop_squids(self):
        while self._squids:
            self._squids.pop().cleanUp()

    def proxy_counters(self):
        """Return the bytes each proxy node sent, as a list."""
        return [node.counters()[0] for node in self.testbed.proxies]
