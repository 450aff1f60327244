"""The soak's real parts: a private RabbitMQ, precache-service, agents.

Everything is started through the functional tests' fixtures
(:mod:`precache.tests.fixtures.rabbitmq` and
:mod:`precache.tests.fixtures.control_plane`), so the soak runs the
daemons exactly as the fault suite does: their own process groups,
config files and logs under ``work_dir``. :class:`Rig` is a fixture:
``with Rig(...) as rig:`` stops and removes everything on the way out.

The faults (:data:`FAULTS`) each have a beginning (a process killed or
the broker stopped) and an end (it is back); the soak places a new image
in between, so the distribution always runs through the fault.
"""

import os
import signal
import time

import fixtures
from oslo_config import cfg

# First: oslo.service's threading backend and precache's warning filters.
from precache import cmd  # noqa: F401
import precache.conf  # noqa: F401,H306 (registers the options)
from precache.tests import fixtures as servers
from precache.tests.fixtures import control_plane
from precache.tests.fixtures import rabbitmq

import procstats

#: How long a launcher's worker may outlive its killed launcher.
ORPHAN_TIMEOUT = 10.0

SERVICE_OPTIONS = {
    'service': {'interval': 1, 'reconcile_interval': 1,
                'service_down_time': 6, 'retry_backoff': 2,
                'retry_backoff_max': 8, 'report_timeout': 60,
                'inventory_grace': 5},
}
AGENT_OPTIONS = {'agent': {'heartbeat_interval': 1}, 'DEFAULT': {
    'debug': 'false'}}


class Rig(fixtures.Fixture):
    """A broker, a service and ``agents`` agents under ``work_dir``.

    :param images_dir: the directory the service lists and fetches from.
    """

    def __init__(self, work_dir, images_dir, agents):
        super().__init__()
        self.work_dir = work_dir
        self.images_dir = images_dir
        self.hosts = ['soak-%d' % i for i in range(1, agents + 1)]
        self._agent_faults = 0

    def next_fault_target(self):
        """The host the next agent fault hits.

        The faults go round every agent but the last one, which no fault
        touches: a long-lived control whose growth the whole run judges.
        """
        targets = self.hosts[:-1] or self.hosts
        self._agent_faults += 1
        return targets[(self._agent_faults - 1) % len(targets)]

    def _setUp(self):
        cfg.CONF([], project='precache', default_config_files=[])
        self.broker = self.useFixture(rabbitmq.RabbitMQFixture())
        self.messaging = self.useFixture(
            control_plane.MessagingFixture(self.broker.transport_url))
        options = dict(SERVICE_OPTIONS, DEFAULT={'debug': 'false'})
        # A fixed port, as in production: a restarted service serves the
        # images at the same URLs.
        options['http_server'] = {'bind_port': servers.free_port()}
        self.service = self.useFixture(control_plane.ServiceProcessFixture(
            self.messaging, self.work_dir, self.images_dir,
            options=options))
        self.agents = {host: self.useFixture(
            control_plane.AgentProcessFixture(
                self.messaging, host, self.work_dir,
                options={g: dict(v) for g, v in AGENT_OPTIONS.items()}))
            for host in self.hosts}

    def roots(self):
        """``{process name: launcher pid}`` of the daemons running now."""
        running = {'service': self.service.process}
        running.update(('agent %s' % host, agent.process)
                       for host, agent in self.agents.items())
        return {name: process.pid for name, process in running.items()
                if process is not None and process.poll() is None}

    def logs(self):
        """``{process name: log file}``."""
        found = {'service': self.service.log_file}
        found.update(('agent %s' % host, agent.log_file)
                     for host, agent in self.agents.items())
        return found


def _orphans(pids, timeout=ORPHAN_TIMEOUT):
    """Wait for ``pids`` to exit; kill and return those that did not."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if procstats.is_running(pid)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Fault(object):
    """A fault: :meth:`begin` breaks something, :meth:`end` repairs it.

    Both return a dict of what was observed, merged into the round's
    record (``target``, ``stop_seconds``, ``orphans``...).
    """

    name = None

    def __init__(self, rig, cycle):
        self.rig = rig
        self.cycle = cycle

    def begin(self):
        return {}

    def end(self):
        return {}


class NoFault(Fault):
    name = 'none'


class _AgentFault(Fault):

    def __init__(self, rig, cycle):
        super().__init__(rig, cycle)
        self.host = rig.next_fault_target()
        self.agent = rig.agents[self.host]

    def end(self):
        self.agent.start()
        return {}


class AgentSigterm(_AgentFault):
    """SIGTERM to the agent's process group; it must exit promptly."""

    name = 'agent-sigterm'

    def begin(self):
        started = time.monotonic()
        self.agent.stop()
        return {'target': self.host,
                'stop_seconds': round(time.monotonic() - started, 2)}


class AgentKill(_AgentFault):
    """kill -9 of the agent's launcher only: its worker must not linger."""

    name = 'agent-kill9'

    def begin(self):
        launcher = self.agent.process.pid
        workers = procstats.process_tree(launcher)[1:]
        os.kill(launcher, signal.SIGKILL)
        self.agent.process.wait(30)
        return {'target': self.host, 'orphans': _orphans(workers)}


class AgentGroupKill(_AgentFault):
    """kill -9 of the agent's whole process group."""

    name = 'agent-kill9-group'

    def begin(self):
        self.agent.kill(signal.SIGKILL)
        return {'target': self.host}


class ServiceKill(Fault):
    """kill -9 of the service's process group, then a restart."""

    name = 'service-kill9'

    def begin(self):
        self.rig.service.kill(signal.SIGKILL)
        return {'target': 'service'}

    def end(self):
        self.rig.service.start()
        return {}


class BrokerRestart(Fault):
    """RabbitMQ stopped on its node (every connection drops), started."""

    name = 'broker-restart'

    def begin(self):
        if self.rig.broker.node is None:
            raise servers.ServerError(
                'cannot restart the broker at $%s: unset it, the soak then '
                'starts a broker of its own' % rabbitmq.TRANSPORT_URL_ENV)
        self.rig.broker.stop_app()
        return {'target': 'broker'}

    def end(self):
        self.rig.broker.start_app()
        return {}


#: Every fault by name.
FAULTS = {fault.name: fault for fault in (
    NoFault, AgentSigterm, AgentKill, AgentGroupKill, ServiceKill,
    BrokerRestart)}
