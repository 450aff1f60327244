"""A real agent through restarts of its (private) RabbitMQ node.

Each restart drops every connection. The agent's worker must close the
sockets of the connections the broker reset (before the fix, each
restart left one or two open sockets in no ``/proc/net`` table, see
:mod:`precache.common.amqp_reconnect`), and, since the broker drops the
casts sent while the agent's queues did not exist, ask the service for
the desired set as soon as it is back instead of waiting for the
service's ``report_timeout``.
"""

import os
import time

from precache.objects import meta as meta_mod
from precache.tests.functional import base
from precache.tests.functional import test_agent_lifecycle
from precache.tests.functional import test_distribution

#: Broker restarts in the leak test.
RESTARTS = 4
#: Open fds the worker may gain over the restarts (a download or a
#: heartbeat in progress at the moment it is sampled).
FD_SLACK = 2
#: The /proc/PID/net tables that list every socket still connected or
#: listening (a TCP socket the peer reset and nobody closed is in none).
_NET_TABLES = ('tcp', 'tcp6', 'udp', 'udp6', 'raw', 'raw6', 'unix')


def open_fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def stale_sockets(pid):
    """Inodes of ``pid``'s sockets that no /proc/net table lists."""
    inodes = set()
    fd_dir = '/proc/%d/fd' % pid
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue  # closed since listed
        if target.startswith('socket:['):
            inodes.add(target[len('socket:['):-1])
    listed = set()
    for table in _NET_TABLES:
        try:
            with open('/proc/%d/net/%s' % (pid, table)) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        column = 6 if table == 'unix' else 9
        listed.update(line.split()[column] for line in lines
                      if len(line.split()) > column)
    return sorted(inodes - listed)


class DesiredSet(object):
    """The service state's answer to ``desired``: what the test wants.

    It keeps nothing else: the endpoint's listeners record the reports
    and heartbeats.
    """

    def __init__(self):
        self.metas = []
        self.asked = 0

    def desired(self, context, host, labels):
        self.asked += 1
        return list(self.metas)

    def report(self, context, host, image_id, status, detail):
        pass

    def heartbeat(self, context, host, status):
        pass


class BrokerRestartsTest(test_distribution.OneImageTestCase):

    data_mib = 1

    def worker_of(self, agent):
        workers = test_agent_lifecycle._children(agent.process.pid)
        self.assertEqual(1, len(workers), agent.log_tail())
        return workers[0]

    def restart_broker(self, agent):
        """Restart the node; wait for a heartbeat of ``agent`` after it."""
        self.broker.restart_app(down_seconds=2)
        seen = len(self.endpoint.heartbeats)
        self.endpoint.wait_for(
            lambda e: [h for h in e.heartbeats[seen:]
                       if h['host'] == agent.host],
            timeout=90, what='a heartbeat of %s after the restart'
            % agent.host)

    def test_restarts_leave_no_open_socket_behind(self):
        agent, = self.start_agents(1)
        worker = self.worker_of(agent)
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('cached', report['status'], agent.log_tail())
        before = open_fds(worker)
        for _ in range(RESTARTS):
            self.restart_broker(agent)
        # The last reconnection's old socket may still be closing: a
        # leaked one (one per restart) never goes.
        deadline = time.monotonic() + 15
        while stale_sockets(worker) and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual([], stale_sockets(worker), agent.log_tail())
        self.assertEqual([], stale_sockets(os.getpid()))
        self.assertLessEqual(open_fds(worker), before + FD_SLACK)
        self.assertEqual(worker, self.worker_of(agent))

    def test_agent_asks_for_the_desired_set_after_a_restart(self):
        state = DesiredSet()
        self.endpoint.manager.state = state
        agent, = self.start_agents(1)
        self.endpoint.wait_for(lambda e: state.asked, what='the first ask')
        # Wanted while the broker is down: no cast reaches the agent, as
        # when a cast is dropped for want of the agent's queue.
        self.broker.stop_app()
        sources = self.server.serve(self.record, self.qcow2)
        state.metas.append(self.sign(meta_mod.build(
            self.record, sources, epoch=base.EPOCH)))
        time.sleep(1)
        self.broker.start_app()
        started = time.monotonic()
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          timeout=60)
        self.assertEqual('cached', report['status'], agent.log_tail())
        self.assertLanded(agent, self.image_id, self.raw)
        # Well before keepalive_interval (an hour) or any report_timeout.
        self.assertLess(time.monotonic() - started, 45, agent.log_tail())
        self.assertGreaterEqual(state.asked, 2)
        with open(agent.log_file) as f:
            self.assertIn('Reconnected to the broker: asking the service',
                          f.read())
