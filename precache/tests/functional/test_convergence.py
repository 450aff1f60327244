"""Convergence on real parts.

A precache-service process with its sqlite state, six precache-agent
processes, a real RabbitMQ, the ``precache`` CLI and a real notification
listener.

One agent is down during the fanout and catches up when it starts; one
cannot land the image (its disk reserve is too high), shows up as failed
with its reason, and has the image once the fault is removed (SIGHUP);
``precache watch`` exits 0 only when every live target has the image; the
round's notifications arrive: start, one progress per host, end.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from precache.common import rpc
from precache.common import verify
from precache.objects import image as image_mod
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_distribution

HOSTS = ['cmp-%d' % i for i in range(1, 7)]
LATE_HOST = 'cmp-6'
BROKEN_HOST = 'cmp-4'
IMAGE_ID = 'golden-image-1'

SERVICE_OPTIONS = {
    'service': {
        # One listing run a second, so a new image is noticed at once;
        # unchanged images are not cast again.
        'interval': 1,
        'reconcile_interval': 1,
        'service_down_time': 6,
        # A failed host keeps its failure for 6 s before the next cast:
        # long enough for ``precache watch`` to see it.
        'retry_backoff': 6,
        'retry_backoff_max': 6,
        'report_timeout': 60,
        'inventory_grace': 5,
    },
}


class CliTestMixin(object):
    """The ``precache`` CLI against the test's service(s).

    Call :meth:`write_cli_config` in ``setUp``; :meth:`service_log` says
    what :meth:`wait_until` shows when it times out.
    """

    def write_cli_config(self):
        self.cli_config = os.path.join(self.tempdir, 'cli.conf')
        control_plane.write_config(self.cli_config, {
            'DEFAULT': {'transport_url': self.messaging.transport_url},
            'oslo_messaging_rabbit': {
                'hostname': 'cli-' + self.messaging.suffix},
            'rpc': {'service_topic': self.messaging.service_topic,
                    'agent_topic': self.messaging.agent_topic}})

    def service_log(self):
        return self.service.log_tail()

    def precache(self, *args, timeout=120):
        """Run the ``precache`` CLI; return (exit status, stdout+stderr).

        A CLI still running after ``timeout`` seconds fails the test with
        what it printed so far and the service's log.
        """
        try:
            result = subprocess.run(
                [sys.executable, '-m', 'precache.cli.app', '--config-file',
                 self.cli_config, '--rpc-timeout', '20'] + list(args),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout, text=True)
        except subprocess.TimeoutExpired as exc:
            self.fail('precache %s still ran after %s s; it printed:\n%s\n'
                      'service log:\n%s' % (' '.join(args), timeout,
                                            exc.output, self.service_log()))
        return result.returncode, result.stdout

    def watch(self, image_id, timeout=120):
        """Run ``precache watch``; return (exit status, output).

        ``timeout`` is the watch's own ``--timeout``. The CLI gets time
        beyond it to report (its last poll may wait for the RPC timeout),
        so a watch that times out says which hosts were not done instead
        of being killed.
        """
        return self.precache('watch', image_id, '--interval', '0.5',
                             '--timeout', str(timeout),
                             timeout=timeout + 60)

    def explain(self, output, agents=None):
        """Return a failure's message.

        The CLI's output, the service's log and the log of each agent
        fixture in ``agents`` (by host).
        """
        parts = [output, 'service log:', self.service_log()]
        for host, agent in sorted((agents or {}).items()):
            parts += ['log of %s:' % host, agent.log_tail()]
        return '\n'.join(parts)

    def precache_json(self, *args):
        status, output = self.precache(*(args + ('-f', 'json')))
        self.assertEqual(0, status, output)
        return json.loads(output[output.index(output.lstrip()[0]):])

    def wait_until(self, predicate, what, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        self.fail('Timed out waiting for %s\nservice log:\n%s'
                  % (what, self.service_log()))


class ServiceProcessTestCase(CliTestMixin, test_distribution.BrokerTestCase):
    """A precache-service process, its notifications and the CLI.

    The service lists the files of ``self.images_dir``; its options are
    :attr:`service_options`.
    """

    service_options = SERVICE_OPTIONS

    def setUp(self):
        super().setUp()
        self.notifications = self.useFixture(
            control_plane.NotificationCollector(self.messaging))
        self.images_dir = os.path.join(self.tempdir, 'images')
        os.makedirs(self.images_dir)
        self.service = self.useFixture(control_plane.ServiceProcessFixture(
            self.messaging, self.tempdir, self.images_dir,
            options=self.service_options))
        self.write_cli_config()

    def live_hosts(self):
        return {h['Host'] for h in self.precache_json('hosts')
                if h['State'] is True}


class ConvergenceTest(ServiceProcessTestCase):

    def host_statuses(self):
        return {line['Host']: line['Status']
                for line in self.precache_json('show', IMAGE_ID)}

    def start_agents(self):
        agents = {}
        for host in HOSTS:
            options = {'agent': {'heartbeat_interval': 1}}
            if host == BROKEN_HOST:
                # Every landing is refused: "not enough free space".
                options['agent']['disk_reserve_mb'] = 1024 * 1024 * 1024
            agents[host] = self.useFixture(control_plane.AgentProcessFixture(
                self.messaging, host, self.tempdir, options=options,
                start=host != LATE_HOST))
        return agents

    def assert_landed(self, agent, expected_sha512):
        path = os.path.join(agent.base_path,
                            image_mod.nova_cache_name(IMAGE_ID))
        self.assertTrue(os.path.exists(path), agent.log_tail())
        self.assertEqual(expected_sha512,
                         verify.file_digest(path, 'sha512'))

    # The scenario ---------------------------------------------------------

    def test_down_and_broken_hosts_converge(self):
        agents = self.start_agents()
        early = set(HOSTS) - {LATE_HOST}
        self.wait_until(lambda: early <= self.live_hosts(),
                        'five agents up')

        # The image appears: the service fans it out to the five live
        # agents; cmp-6 is down and misses the fanout.
        qcow2, raw = test_distribution.make_qcow2(self.tempdir, 'golden')
        shutil.copy(qcow2, os.path.join(self.images_dir, IMAGE_ID))
        raw_sha512 = verify.file_digest(raw, 'sha512')
        self.wait_until(lambda: IMAGE_ID in {
            i['Image ID'] for i in self.precache_json('status')},
            'the image listed by the service')

        status, output = self.watch(IMAGE_ID)
        self.assertEqual(1, status, self.explain(output, agents))
        self.assertIn(BROKEN_HOST, output)
        self.assertIn('free', output)
        statuses = self.host_statuses()
        for host in early - {BROKEN_HOST}:
            self.assertIn(statuses[host], ('cached', 'existing'), statuses)
            self.assert_landed(agents[host], raw_sha512)
        self.assertIsNone(statuses.get(LATE_HOST))
        self.assertEqual([], os.listdir(agents[BROKEN_HOST].base_path)
                         if os.path.isdir(agents[BROKEN_HOST].base_path)
                         else [])

        # The fanout round: start, one progress per live host, end.
        start, = self.wait_until(lambda: self.notifications.of_type(
            'precache.cache.start', image_id=IMAGE_ID, kind='fanout'),
            'the start notification')
        self.assertEqual(5, start['total'])
        self.assertEqual(sorted(early), start['hosts'])
        progress = self.wait_until(
            lambda: (lambda p: p if len(p) == 5 else None)(
                self.notifications.of_type(
                    'precache.cache.progress',
                    round_id=start['round_id'])),
            'five progress notifications')
        self.assertEqual([1, 2, 3, 4, 5], sorted(p['index'] for p in progress))
        self.assertEqual(sorted(early), sorted(p['host'] for p in progress))
        failed = [p for p in progress if p['images_failed']]
        self.assertEqual([BROKEN_HOST], [p['host'] for p in failed])
        self.assertTrue(all(p['total'] == 5 for p in progress))
        end, = self.wait_until(lambda: self.notifications.of_type(
            'precache.cache.end', round_id=start['round_id']),
            'the end notification')
        self.assertEqual((5, 4, 1), (end['answered'], end['cached'],
                                     end['failed']))

        # cmp-6 starts: it asks for the desired set and gets the image.
        agents[LATE_HOST].start()
        self.wait_until(lambda: self.host_statuses().get(LATE_HOST) in
                        ('cached', 'existing'), 'cmp-6 catching up')
        self.assert_landed(agents[LATE_HOST], raw_sha512)

        # The fault is removed: the next cast after the backoff lands it.
        agents[BROKEN_HOST].reconfigure({'agent': {'disk_reserve_mb': 0}})
        self.wait_until(lambda: self.host_statuses().get(BROKEN_HOST) ==
                        'cached', 'cmp-4 cached after its repair')
        status, output = self.watch(IMAGE_ID)
        self.assertEqual(0, status, self.explain(output, agents))
        self.assert_landed(agents[BROKEN_HOST], raw_sha512)
        statuses = self.host_statuses()
        self.assertEqual({h: 'cached' for h in HOSTS},
                         {h: ('cached' if s in ('cached', 'existing')
                              else s) for h, s in statuses.items()})
        listed = {i['Image ID']: i for i in self.precache_json('status')}
        self.assertEqual(6, listed[IMAGE_ID]['Live targets'])


class StableQueueTest(test_distribution.DistributionTestCase):
    """An agent restarted within the queue TTL gets the fanout it missed.

    This is what use_queue_manager (precache's default) gives.
    The endpoint here keeps no state: the agent's start-up ``desired``
    call gets an empty set, so the image can only come from the queue.
    """

    def test_restarted_agent_receives_the_missed_fanout(self):
        self.assertTrue(self.conf.oslo_messaging_rabbit.use_queue_manager)
        agent, = self.start_agents(1, prefix='queued',
                                   options={'agent': {
                                       'heartbeat_interval': 1}})
        agent.stop()
        image_id = 'missed-while-down'
        qcow2, raw = test_distribution.make_qcow2(self.images_dir, image_id)
        pipeline = self.start_pipeline()

        outcome, = pipeline.run(rpc.get_context())
        self.assertTrue(outcome.distributed, outcome.error)
        time.sleep(1)
        self.assertEqual(0, self.endpoint.count_reports(agent.host,
                                                        image_id))

        agent.start()
        report = self.endpoint.report_for(agent.host, image_id)
        self.assertEqual('cached', report['status'], agent.log_tail())
        self.assertLanded(agent, image_id, raw)
