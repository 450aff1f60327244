"""Real control-plane parts for functional tests.

:class:`MessagingFixture` points this process at a real RabbitMQ with
topics of its own (tests running in parallel on one broker never see each
other's casts); :class:`ServiceEndpointFixture` plays the service's RPC
endpoint and records what agents report; :class:`AgentProcessFixture`
runs a real ``precache-agent`` in a separate process.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import fixtures
from oslo_config import cfg
import oslo_messaging as messaging
from oslo_messaging import conffixture

from precache.conf import defaults as conf_defaults
from precache.db import models
from precache import rpc
from precache.service import manager as service_manager
from precache.tests.functional import servers

DEFAULT_TIMEOUT = 60


def write_config(path, groups):
    """Write ``{group: {option: value}}`` as a precache config file."""
    servers.write_ini(path, {
        group: {key: (','.join(str(v) for v in value)
                      if isinstance(value, (list, tuple)) else str(value))
                for key, value in values.items()}
        for group, values in groups.items()})


def stop_process(process, timeout):
    """SIGTERM the process group of ``process``; SIGKILL after timeout."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class MessagingFixture(fixtures.Fixture):
    """Configure ``cfg.CONF`` for a broker and initialise precache.rpc.

    :param transport_url: the broker's URL.
    """

    def __init__(self, transport_url):
        super().__init__()
        self.transport_url = transport_url
        self.suffix = suffix = uuid.uuid4().hex[:8]
        self.agent_topic = 'precache-agent-test-' + suffix
        self.service_topic = 'precache-service-test-' + suffix
        self.notification_topic = 'precache-notifications-test-' + suffix

    def _setUp(self):
        # The control exchange precache's console scripts use.
        conf_defaults.set_defaults()
        messaging_conf = self.useFixture(conffixture.ConfFixture(cfg.CONF))
        messaging_conf.transport_url = self.transport_url
        lock_dir = self.useFixture(fixtures.TempDir()).path
        cfg.CONF.set_override('lock_path', lock_dir, group='oslo_concurrency')
        self.addCleanup(cfg.CONF.clear_override, 'lock_path',
                        group='oslo_concurrency')
        # Stable queue names must not be shared by concurrent tests.
        cfg.CONF.set_override('hostname', 'precache-test-' + self.suffix,
                              group='oslo_messaging_rabbit')
        self.addCleanup(cfg.CONF.clear_override, 'hostname',
                        group='oslo_messaging_rabbit')
        cfg.CONF.set_override('agent_topic', self.agent_topic, group='rpc')
        cfg.CONF.set_override('service_topic', self.service_topic,
                              group='rpc')
        self.addCleanup(cfg.CONF.clear_override, 'agent_topic', group='rpc')
        self.addCleanup(cfg.CONF.clear_override, 'service_topic',
                        group='rpc')
        rpc.cleanup()
        rpc.init(cfg.CONF)
        self.addCleanup(rpc.cleanup)


class ServiceEndpointFixture(fixtures.Fixture):
    """The service's RPC endpoint, recording reports and heartbeats."""

    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        self.reports = []
        self.heartbeats = []
        self._changed = threading.Condition()

    def _setUp(self):
        self.manager = service_manager.ServiceManager(self.conf)
        self.manager.add_listener(self._record)
        target = messaging.Target(topic=self.conf.rpc.service_topic,
                                  server='test-service')
        self.server = rpc.get_server(target, [self.manager])
        self.server.start()
        self.addCleanup(self._stop)

    def _stop(self):
        self.server.stop()
        self.server.wait()

    def _record(self, kind, host, payload):
        if payload.get('status') in models.IN_PROGRESS:
            return  # a progress notice, not an answer
        with self._changed:
            entry = dict(payload, host=host)
            (self.reports if kind == 'report' else
             self.heartbeats).append(entry)
            self._changed.notify_all()

    def wait_for(self, predicate, timeout=DEFAULT_TIMEOUT, what='a message'):
        """Wait until ``predicate(self)`` is true; return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        'Timed out after %ss waiting for %s; reports: %s'
                        % (timeout, what, self.reports))
                self._changed.wait(left)

    def report_for(self, host, image_id, after=0, timeout=DEFAULT_TIMEOUT):
        """Wait for the ``after``-th+1 report of ``host`` on ``image_id``."""
        def found(endpoint):
            matching = [r for r in endpoint.reports
                        if r['host'] == host and r['image_id'] == image_id]
            return matching[after] if len(matching) > after else None
        return self.wait_for(found, timeout,
                             'a report of %s on %s' % (host, image_id))

    def count_reports(self, host, image_id):
        with self._changed:
            return len([r for r in self.reports if r['host'] == host and
                        r['image_id'] == image_id])

    def wait_for_heartbeat(self, host, timeout=DEFAULT_TIMEOUT):
        return self.wait_for(
            lambda e: [h for h in e.heartbeats if h['host'] == host],
            timeout, 'a heartbeat of %s' % host)


class AgentProcessFixture(fixtures.Fixture):
    """A real ``precache-agent`` process with a Nova-style store.

    :param messaging_fixture: a set-up :class:`MessagingFixture`.
    :param host: the agent's host name.
    :param base_dir: directory for the agent's files (instances path,
        state, config, log).
    :param options: extra ``{group: {option: value}}`` for its config file.
    :param start: start the process in ``setUp`` (else call :meth:`start`).
    """

    def __init__(self, messaging_fixture, host, base_dir, options=None,
                 start=True):
        super().__init__()
        self.start_at_setup = start
        self.messaging = messaging_fixture
        self.host = host
        self.base_dir = os.path.join(base_dir, host)
        self.instances_path = os.path.join(self.base_dir, 'instances')
        self.base_path = os.path.join(self.instances_path, '_base')
        self.options = options or {}
        self.process = None

    def _setUp(self):
        os.makedirs(self.instances_path, exist_ok=True)
        self.config_file = os.path.join(self.base_dir, 'precache.conf')
        self.log_file = os.path.join(self.base_dir, 'agent.log')
        self._write_config()
        if self.start_at_setup:
            self.start()
        self.addCleanup(self.stop)

    def reconfigure(self, options):
        """Rewrite the config with more ``options`` and send SIGHUP."""
        for group, values in options.items():
            self.options.setdefault(group, {}).update(values)
        self._write_config()
        os.kill(self.process.pid, signal.SIGHUP)

    def _write_config(self):
        groups = {
            'DEFAULT': {'host': self.host,
                        'transport_url': self.messaging.transport_url,
                        'state_path': os.path.join(self.base_dir, 'state'),
                        'log_file': self.log_file, 'debug': 'true'},
            'oslo_messaging_rabbit': {
                'hostname': '%s-%s' % (self.host, self.messaging.suffix)},
            'rpc': {'agent_topic': self.messaging.agent_topic,
                    'service_topic': self.messaging.service_topic},
            'agent': {'store': 'nova-libvirt', 'disk_reserve_mb': 0,
                      'heartbeat_interval': 2},
            'bittorrent_source': {'download_dir': os.path.join(
                self.base_dir, 'torrents')},
            'nova_libvirt': {'read_nova_config': 'false',
                             'instances_path': self.instances_path,
                             'state_dir': os.path.join(self.base_dir,
                                                       'state')},
        }
        for group, values in self.options.items():
            groups.setdefault(group, {}).update(values)
        write_config(self.config_file, groups)

    def start(self):
        """Start the agent process (again, after :meth:`kill`)."""
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'precache.cmd.agent',
             '--config-file', self.config_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)

    def _signal(self, sig):
        """Send ``sig`` to the agent's process group if it runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            return True
        return False

    def kill(self, sig=signal.SIGKILL):
        """Kill the agent's process group abruptly."""
        if self._signal(sig):
            self.process.wait(30)

    def terminate(self):
        """Send SIGTERM without waiting (:meth:`stop` waits)."""
        self._signal(signal.SIGTERM)

    def stop(self):
        """Stop the agent with SIGTERM, SIGKILL after 20 s."""
        stop_process(self.process, 20)

    def log_tail(self, lines=40):
        return servers.log_tail(self.log_file, lines)


class ServiceProcessFixture(fixtures.Fixture):
    """A real ``precache-service`` process over the test's broker.

    It lists the files of ``images_dir`` (``directory`` lister), fetches
    them with the ``file`` fetcher and serves them with the built-in
    ``http`` server; its state is an sqlite file in ``base_dir``, and its
    notifications go to ``messaging_fixture.notification_topic``.

    :param options: extra ``{group: {option: value}}`` for its config.
    """

    def __init__(self, messaging_fixture, base_dir, images_dir,
                 options=None):
        super().__init__()
        self.messaging = messaging_fixture
        self.base_dir = os.path.join(base_dir, 'service')
        self.images_dir = images_dir
        self.options = options or {}
        self.process = None

    def _setUp(self):
        os.makedirs(self.base_dir, exist_ok=True)
        self.config_file = os.path.join(self.base_dir, 'precache.conf')
        self.log_file = os.path.join(self.base_dir, 'service.log')
        groups = {
            'DEFAULT': {'host': 'precache-service-' + self.messaging.suffix,
                        'transport_url': self.messaging.transport_url,
                        'state_path': self.base_dir,
                        'log_file': self.log_file, 'debug': 'true'},
            'oslo_messaging_rabbit': {
                'hostname': 'service-' + self.messaging.suffix},
            'oslo_messaging_notifications': {
                'driver': 'messagingv2',
                'topics': self.messaging.notification_topic},
            'rpc': {'agent_topic': self.messaging.agent_topic,
                    'service_topic': self.messaging.service_topic},
            'service': {'listers': 'directory', 'fetcher': 'file',
                        'server': 'http',
                        'staging_dir': os.path.join(self.base_dir,
                                                    'staging')},
            'directory_lister': {'path': self.images_dir},
            'file_fetcher': {'image_dir': self.images_dir},
            'http_server': {'bind_host': '127.0.0.1', 'bind_port': 0,
                            'document_root': os.path.join(self.base_dir,
                                                          'www')},
        }
        for group, values in self.options.items():
            groups.setdefault(group, {}).update(values)
        write_config(self.config_file, groups)
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'precache.cmd.service',
             '--config-file', self.config_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.addCleanup(self.stop)
        self.wait_until_started()

    def wait_until_started(self, timeout=DEFAULT_TIMEOUT):
        """Wait for the service to listen (a call sent before is lost)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if 'precache-service started' in servers.log_tail(self.log_file,
                                                              100000):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise servers.ServerError('precache-service did not start:\n%s'
                                  % self.log_tail())

    def stop(self):
        stop_process(self.process, 20)

    def log_tail(self, lines=60):
        return servers.log_tail(self.log_file, lines)


class NotificationCollector(fixtures.Fixture):
    """A real oslo.messaging notification listener on the test's topic.

    ``events`` holds ``(event_type, payload data)`` in arrival order.
    """

    def __init__(self, messaging_fixture):
        super().__init__()
        self.messaging = messaging_fixture
        self.events = []
        self._lock = threading.Lock()

    def _setUp(self):
        transport = messaging.get_notification_transport(cfg.CONF)
        self.addCleanup(transport.cleanup)
        self.listener = messaging.get_notification_listener(
            transport,
            [messaging.Target(topic=self.messaging.notification_topic)],
            [self])
        self.listener.start()
        self.addCleanup(self.listener.wait)
        self.addCleanup(self.listener.stop)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.events.append(
                (event_type, payload.get('precache_object.data', payload)))

    def of_type(self, event_type, **match):
        """Events of ``event_type`` whose data has the ``match`` items."""
        with self._lock:
            return [data for kind, data in self.events
                    if kind == event_type and
                    all(data.get(k) == v for k, v in match.items())]
