"""A daemon started in the background by a shell that exits at once.

``sh -c 'precache-agent ... &'`` in a new session: the shell leads the
agent's process group and exits before the agent is up. oslo.messaging's
queue manager (on in precache) reads ``/proc/<process group>/stat`` when
it names its queues, which fails once that leader is gone. The agent
leads a session and group of its own first thing
(:mod:`precache.common.process`), keeps running, heartbeats and answers
casts.
"""

import os
import signal
import subprocess
import sys
import time

from precache.agent import rpcapi as agent_rpcapi
from precache.common import rpc
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_distribution


class OrphanProcess(object):
    """What the fixtures use of :class:`subprocess.Popen`, for a stranger.

    The process is not our child: its parent, a shell, has exited.
    """

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        try:
            with open('/proc/%d/stat' % self.pid) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            state = 'X'
        if state in ('Z', 'X'):
            self.returncode = -1
        return self.returncode

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout or 60)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return self.returncode


class ShellStartedAgent(control_plane.AgentProcessFixture):
    """An agent started by ``sh -c '... &'`` leading a new session."""

    def start(self):
        shell = subprocess.Popen(
            ['sh', '-c', '"$@" </dev/null >/dev/null 2>&1 & echo $!', 'sh',
             sys.executable, '-m', 'precache.cmd.agent', '--config-file',
             self.config_file],
            stdout=subprocess.PIPE, start_new_session=True)
        out, _ = shell.communicate(timeout=10)
        self.shell_pid = shell.pid
        self.process = OrphanProcess(int(out))

    def stop(self):
        process = self.process
        if process is None or process.poll() is not None:
            return
        # Its own group once it runs; never the exited shell's group.
        if os.getpgid(process.pid) == process.pid:
            control_plane.stop_process(process, 20)
        else:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)


class ExitedShellTest(test_distribution.DistributionTestCase):

    def test_agent_outlives_the_shell_that_started_it(self):
        self.assertTrue(self.conf.oslo_messaging_rabbit.use_queue_manager)
        agent = self.useFixture(ShellStartedAgent(
            self.messaging, 'orphan', self.tempdir,
            options={'agent': {'heartbeat_interval': 1}}))
        pid = agent.process.pid
        self.assertFalse(os.path.exists('/proc/%d' % agent.shell_pid))

        self.endpoint.wait_for_heartbeat(agent.host)
        self.assertIsNone(agent.process.poll(), agent.log_tail())
        self.assertEqual(pid, os.getpgid(pid))
        with open(agent.log_file) as f:
            self.assertIn('Leading process group %d of its own' % pid,
                          f.read())

        # It answers a targeted cast (its queue is named after its new
        # group) and keeps heartbeating.
        agent_api = agent_rpcapi.AgentAPI(self.conf)
        agent_api.client.prepare(server=agent.host).cast(
            rpc.get_context(), 'cache', image_id='orphan-image',
            meta={'version': '1.0', 'image': {'id': 'orphan-image'}})
        report = self.endpoint.report_for(agent.host, 'orphan-image')
        self.assertEqual('failed', report['status'])
        # Refused as it must be: the test's meta carries no signature.
        self.assertEqual('unsigned', report['code'])
        beats = len([h for h in self.endpoint.heartbeats
                     if h['host'] == agent.host])
        self.endpoint.wait_for(
            lambda e: len([h for h in e.heartbeats
                           if h['host'] == agent.host]) > beats,
            what='another heartbeat of %s' % agent.host)
        self.assertIsNone(agent.process.poll(), agent.log_tail())
