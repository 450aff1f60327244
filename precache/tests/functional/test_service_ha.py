"""Two precache-service instances, one leader: kill -9 it mid-distribution.

Real parts only: a private Redis (the tooz coordination backend), a
private RabbitMQ node, a private PostgreSQL cluster shared by both
instances, four precache-agent processes and the ``precache`` CLI.

The data plane survives the leader: both instances write their http
artifacts into one shared document root (``[http_server] listen =
false``) that a separate web server publishes under one ``base_url``, as
a shared file system behind a load balancer would. Agents are slowed
down (``bandwidth_limit``) so that the leader is killed while they
download; one agent is down during the fanout and starts after the kill,
so the new leader must continue the distribution.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import sqlalchemy as sa

from precache.common import verify
from precache.db import api as db_api
from precache.db import sql
from precache.objects import image as image_mod
from precache.tests import fixtures as servers
from precache.tests.fixtures import control_plane
from precache.tests.fixtures import postgresql
from precache.tests.fixtures import redis
from precache.tests.functional import test_convergence
from precache.tests.functional import test_distribution

HOSTS = ['cmp-%d' % i for i in range(1, 5)]
LATE_HOST = 'cmp-4'
IMAGE_ID = 'golden-ha-1'
INTERVAL = 4
LEASE = 3


class TwoInstancesTestCase(test_convergence.CliTestMixin,
                           test_distribution.BrokerTestCase):
    """Two instances on Redis, RabbitMQ and PostgreSQL, a shared origin."""

    #: ``[service] interval`` of both instances.
    interval = INTERVAL

    def setUp(self):
        super().setUp()
        self.redis = self.useFixture(redis.RedisFixture())
        self.database = self.useFixture(
            postgresql.PostgreSQLClusterFixture())
        self.images_dir = os.path.join(self.tempdir, 'images')
        self.www = os.path.join(self.tempdir, 'www')
        os.makedirs(self.images_dir)
        os.makedirs(self.www)
        self.origin = self._start_origin()
        self.write_cli_config()
        self.instances = {}
        # One after the other: the first creates the schema.
        for name in ('svc-a', 'svc-b'):
            self.instances[name] = self.useFixture(
                control_plane.ServiceProcessFixture(
                    self.messaging, self.tempdir, self.images_dir,
                    options=self._service_options(), name=name))

    def _start_origin(self):
        """The shared origin: a web server on the shared document root."""
        port = servers.free_port()
        process = subprocess.Popen(
            [sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
             '--directory', self.www, str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.addCleanup(control_plane.stop_process, process, 10)
        servers.wait_for_port(port, process=process)
        return 'http://127.0.0.1:%d' % port

    def _service_options(self):
        return {
            'service': {'interval': self.interval, 'reconcile_interval': 2,
                        'service_down_time': 6, 'inventory_grace': 5,
                        'retry_backoff': 5, 'retry_backoff_max': 5,
                        'report_timeout': 60},
            'coordination': {'backend_url': self.redis.url,
                             'lease_seconds': LEASE},
            'database': {'connection': self.database.url},
            'http_server': {'listen': 'false', 'base_url': self.origin,
                            'document_root': self.www},
        }

    def service_log(self):
        return '\n'.join('--- %s ---\n%s' % (name, instance.log_tail())
                         for name, instance in self.instances.items())

    def leader(self):
        """The instance that logged it leads, last (None: none yet)."""
        leaders = [name for name, instance in self.instances.items()
                   if instance.process.poll() is None and
                   'is now the leader' in servers.log_tail(
                       instance.log_file, 100000)]
        return leaders[-1] if len(leaders) == 1 else None

    def wait_for_leader(self):
        """Return ``(leader, follower)`` once one instance leads."""
        leader_name = self.wait_until(self.leader, 'one leader')
        follower_name, = set(self.instances) - {leader_name}
        return self.instances[leader_name], self.instances[follower_name]


class ServiceHATest(TwoInstancesTestCase):

    def _keep_asking(self, stop, failures, answers):
        """``precache status`` in a loop; record every failure."""
        while not stop.is_set():
            status, output = self.precache('status')
            if status != 0:
                failures.append(output)
            else:
                answers.append(output)
            time.sleep(0.5)

    def test_kill_the_leader_mid_distribution(self):
        agents = {}
        for host in HOSTS:
            agents[host] = self.useFixture(control_plane.AgentProcessFixture(
                self.messaging, host, self.tempdir,
                options={'agent': {'heartbeat_interval': 1,
                                   'bandwidth_limit': 400000,
                                   'allowed_origins': self.origin + '/'}},
                start=host != LATE_HOST))
        early = set(HOSTS) - {LATE_HOST}
        self.wait_until(lambda: early <= {
            h['Host'] for h in self.precache_json('hosts')
            if h['State'] is True}, 'three agents up')
        leader, follower = self.wait_for_leader()
        status, output = self.precache('status')
        self.assertEqual(0, status, output)
        self.assertIn('Leader: %s' % leader.host, output)

        stop_asking = threading.Event()
        failures, answers = [], []
        asker = threading.Thread(target=self._keep_asking,
                                 args=(stop_asking, failures, answers))
        asker.start()
        self.addCleanup(asker.join, 120)
        self.addCleanup(stop_asking.set)

        # A new image: the leader fans it out; agents download slowly.
        qcow2, raw = test_distribution.make_qcow2(self.tempdir, 'golden')
        os.rename(qcow2, os.path.join(self.images_dir, IMAGE_ID))
        raw_sha512 = verify.file_digest(raw, 'sha512')
        self.wait_until(
            lambda: 'Image %s fanned out' % IMAGE_ID in servers.log_tail(
                leader.log_file, 100000), 'the fanout')
        self.wait_until(lambda: any(
            'downloading from source' in agents[h].log_tail(100000)
            for h in early), 'a download in progress')
        leader.kill()
        killed_at = time.monotonic()
        agents[LATE_HOST].start()

        self.wait_until(lambda: 'is now the leader' in servers.log_tail(
            follower.log_file, 100000), 'the follower taking over',
            timeout=4 * INTERVAL)
        took_over = time.monotonic() - killed_at
        self.assertLess(took_over, 2 * INTERVAL, follower.log_tail())

        status, output = self.watch(IMAGE_ID)
        self.assertEqual(0, status, self.explain(output, agents))
        stop_asking.set()
        asker.join(120)
        self.assertEqual([], failures)
        self.assertTrue(answers)
        for host in HOSTS:
            path = os.path.join(agents[host].base_path,
                                image_mod.nova_cache_name(IMAGE_ID))
            self.assertTrue(os.path.exists(path), agents[host].log_tail())
            self.assertEqual(raw_sha512, verify.file_digest(path, 'sha512'))
        status, output = self.precache('status')
        self.assertEqual(0, status, output)
        self.assertIn('Leader: %s' % follower.host, output)
        self.assert_fanned_out_once()
        self.assertEqual(-signal.SIGKILL, leader.process.returncode)

    def assert_fanned_out_once(self):
        """One fanout round; each host in at most one round at a time."""
        db = db_api.StateDB(self.database.url)
        self.addCleanup(db.engine.dispose)
        with db.engine.connect() as conn:
            rounds = [dict(r._mapping) for r in conn.execute(
                sa.select(sql.ROUNDS).where(
                    sql.ROUNDS.c.image_id == IMAGE_ID))]
        fanouts = [r for r in rounds if r['kind'] == 'fanout']
        self.assertEqual(1, len(fanouts), rounds)
        self.assertEqual(3, fanouts[0]['total'], rounds)
        self.assertEqual(1, len({r['generation'] for r in rounds}), rounds)


class FollowerRequestTest(TwoInstancesTestCase):
    """``precache cache`` answered by a follower is served at once.

    The periodic runs are far apart (``interval``): only the follower's
    wake-up makes the leader serve the request before its next run.
    """

    interval = 600
    #: Requests sent until one reaches the follower (the instances take
    #: the service topic's calls in turn).
    attempts = 8

    def test_a_request_on_the_follower_is_served_by_the_leader_now(self):
        leader, follower = self.wait_for_leader()
        self.wait_until(lambda: 'Pipeline run done' in servers.log_tail(
            leader.log_file, 100000), "the leader's first run")
        qcow2, _raw = test_distribution.make_qcow2(self.tempdir, 'golden')
        for attempt in range(self.attempts):
            image_id = 'golden-request-%d' % attempt
            # Listed by no run yet: the next one is ten minutes away.
            shutil.copy(qcow2, os.path.join(self.images_dir, image_id))
            asked_at = time.monotonic()
            status, output = self.precache('cache', image_id)
            self.assertEqual(0, status, output)
            taken = 'Image %s requested (targets' % image_id
            if taken in servers.log_tail(follower.log_file, 100000):
                break
            self.assertIn(taken, servers.log_tail(leader.log_file, 100000))
        else:
            self.fail('No request reached the follower in %d tries:\n%s'
                      % (self.attempts, self.service_log()))
        fanned_out = 'Image %s fanned out' % image_id
        self.wait_until(lambda: fanned_out in servers.log_tail(
            leader.log_file, 100000), 'the leader serving the request',
            timeout=60)
        self.assertLess(time.monotonic() - asked_at, self.interval / 10)
        follower_log = servers.log_tail(follower.log_file, 100000)
        self.assertIn('Image %s requested: the leading instance was told '
                      'to serve it' % image_id, follower_log)
        self.assertNotIn('fanned out', follower_log)
        self.assertIn('Image %s requested on another instance: serving it'
                      % image_id, servers.log_tail(leader.log_file, 100000))
