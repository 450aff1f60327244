"""Convergence: fanout rounds, targeted repairs, backoff, caps, targets."""

import contextlib

import fixtures

from precache.db import api as db_api
from precache.objects import states
from precache.service import convergence
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0


class ReconcilerTestCase(state_base.StateTestCase):

    def setUp(self):
        super().setUp()
        self.flags(group='service', service_down_time=180, retry_backoff=60,
                   retry_backoff_max=200, report_timeout=600,
                   max_casts_per_host=5, max_casts_per_cycle=100,
                   round_timeout=3600)
        self.agent_api = state_base.FakeAgentAPI()
        self.notifier = state_base.FakeNotifier()
        self.reconciler = convergence.Reconciler(
            self.conf, self.db, self.agent_api, self.notifier,
            signer=self.signing_keys.signer)

    def reconcile(self, now, hosts=None):
        self.agent_api.casts = []
        return self.reconciler.reconcile(None, hosts=hosts, now=now)

    def row(self, image_id, host):
        return self.db.image_hosts(image_id)[host]


class BackoffTest(ReconcilerTestCase):

    def test_exponential_and_capped(self):
        self.assertEqual([60, 60, 120, 200, 200],
                         [self.reconciler.backoff(n)
                          for n in (0, 1, 2, 3, 10)])


class ReconcileTest(ReconcilerTestCase):

    def test_live_host_without_a_row_gets_a_targeted_cast(self):
        self.add_image('a', generation=7)
        self.beat('h1', T0)
        result = self.reconcile(at(10))
        self.assertEqual([('a', 7, 'h1')], self.agent_api.casts)
        self.assertEqual((1, 0), (result['casts'], result['deferred']))
        row = self.row('a', 'h1')
        self.assertEqual((states.PENDING, 1, at(10), at(70), 7),
                         (row['status'], row['attempts'], row['cast_at'],
                          row['next_attempt_at'], row['generation']))
        start, = self.notifier.events('start')
        self.assertEqual(('a', 'targeted', ['h1'], 7),
                         (start['image_id'], start['kind'], start['hosts'],
                          start['generation']))
        self.assertEqual(row['round_id'], start['round_id'])

    def test_one_round_per_image(self):
        self.add_image('a')
        self.add_image('b')
        self.beat('h1', T0)
        self.beat('h2', T0)
        self.reconcile(at(10))
        self.assertEqual(['h1', 'h1', 'h2', 'h2'], self.agent_api.hosts())
        starts = {s['image_id']: s for s in self.notifier.events('start')}
        self.assertEqual({'a', 'b'}, set(starts))
        self.assertEqual(['h1', 'h2'], starts['a']['hosts'])

    def test_down_hosts_get_nothing(self):
        self.add_image('a')
        self.beat('down', T0)
        self.beat('up', at(200))
        self.reconcile(at(200))
        self.assertEqual(['up'], self.agent_api.hosts())
        self.assertNotIn('down', self.db.image_hosts('a'))

    def test_nothing_to_do(self):
        self.add_image('a')
        self.beat('h1', T0, inventory=['a'])
        result = self.reconcile(at(10))
        self.assertEqual([], self.agent_api.casts)
        self.assertEqual((0, 0), (result['casts'], result['deferred']))
        self.assertEqual([], self.notifier.sent)

    def test_a_steady_pass_does_not_read_every_host(self):
        # What a pass costs follows what it casts: with nothing lacking it
        # reads no host list (10,000 rows and labels at scale).
        self.add_image('a')
        self.beat('h1', T0, inventory=['a'])
        self.beat('h2', T0, inventory=['a'])
        live_hosts = self.useFixture(fixtures.MockPatchObject(
            self.db, 'live_hosts', wraps=self.db.live_hosts)).mock
        self.assertEqual(0, self.reconcile(at(10))['casts'])
        live_hosts.assert_not_called()
        self.beat('h3', at(5))
        self.assertEqual(1, self.reconcile(at(10))['casts'])
        self.assertEqual(['h3'], self.agent_api.hosts())
        # The lacking rows carry their hosts' names and labels.
        live_hosts.assert_not_called()

    def test_undesired_images_are_not_cast(self):
        self.add_image('a')
        self.add_image('b')
        # "a" is no longer listed; "c" has never been served.
        self.db.record_listing([state_base.record('b'),
                                state_base.record('c')],
                               complete=True, now=at(1))
        self.beat('h1', T0)
        self.reconcile(at(10))
        self.assertEqual([('b', 1, 'h1')], self.agent_api.casts)

    def test_failed_rows_are_retried_after_an_exponential_backoff(self):
        self.add_image('a')
        self.beat('h1', T0)
        expected = [(0, 60), (60, 120), (180, 200), (380, 200)]
        for attempt, (cast_at, backoff) in enumerate(expected, 1):
            self.beat('h1', at(cast_at))
            if attempt > 1:
                # Not before the backoff of the previous attempt is over.
                self.reconcile(at(cast_at - 1))
                self.assertEqual([], self.agent_api.casts)
            self.reconcile(at(cast_at))
            self.assertEqual(['h1'], self.agent_api.hosts())
            row = self.row('a', 'h1')
            self.assertEqual((attempt, at(cast_at + backoff)),
                             (row['attempts'], row['next_attempt_at']))
            self.db.record_report('h1', 'a', states.FAILED,
                                  {'reason': 'broken'}, now=at(cast_at))

    def test_in_progress_rows_are_cast_again_after_report_timeout(self):
        self.add_image('a')
        self.beat('h1', T0)
        self.reconcile(T0)
        self.db.record_report('h1', 'a', states.DOWNLOADING, {},
                              now=at(5))
        for now in (100, 300, 599):
            self.beat('h1', at(now))
            self.reconcile(at(now))
            self.assertEqual([], self.agent_api.casts, now)
        self.beat('h1', at(600))
        self.reconcile(at(600))
        self.assertEqual(['h1'], self.agent_api.hosts())
        self.assertEqual(2, self.row('a', 'h1')['attempts'])

    def test_present_rows_are_not_cast_again(self):
        self.add_image('a')
        self.beat('h1', T0)
        self.reconcile(T0)
        self.db.record_report('h1', 'a', states.CACHED, {}, now=at(5))
        self.beat('h1', at(1000), inventory=['a'])
        self.reconcile(at(1000))
        self.assertEqual([], self.agent_api.casts)

    def test_missing_image_is_cast_again(self):
        self.add_image('a')
        self.beat('h1', T0, inventory=['a'])
        self.beat('h1', at(300), inventory=[])
        self.reconcile(at(300))
        self.assertEqual(['h1'], self.agent_api.hosts())

    def test_cap_per_host(self):
        self.flags(group='service', max_casts_per_host=2)
        for image_id in ('a', 'b', 'c'):
            self.add_image(image_id)
        self.beat('h1', T0)
        self.beat('h2', T0)
        result = self.reconcile(at(10))
        self.assertEqual((4, 2), (result['casts'], result['deferred']))
        self.assertEqual(['h1', 'h1', 'h2', 'h2'], self.agent_api.hosts())
        # The next pass sends what was deferred.
        result = self.reconcile(at(20))
        self.assertEqual((2, 0), (result['casts'], result['deferred']))
        self.assertEqual(['h1', 'h2'], self.agent_api.hosts())
        for image_id in ('a', 'b', 'c'):
            self.assertEqual({'h1', 'h2'},
                             set(self.db.image_hosts(image_id)))

    def test_cap_per_cycle(self):
        self.flags(group='service', max_casts_per_cycle=3)
        for image_id in ('a', 'b'):
            self.add_image(image_id)
        for host in ('h1', 'h2', 'h3'):
            self.beat(host, T0)
        result = self.reconcile(at(10))
        # The pass stops reading at the first lacking row beyond the cap:
        # "deferred" says at least one more waits.
        self.assertEqual((3, 1, True), (result['casts'], result['deferred'],
                                        result['stopped_at_caps']))
        self.assertEqual(3, len(self.agent_api.casts))
        result = self.reconcile(at(20))
        self.assertEqual((3, 0), (result['casts'], result['deferred']))
        result = self.reconcile(at(30))
        self.assertEqual((0, 0), (result['casts'], result['deferred']))

    def test_targets_by_host_glob_and_label(self):
        self.add_image('a', targets={'hosts': ['cmp-a-*'],
                                     'labels': ['gpu']})
        self.beat('cmp-a-1', T0)
        self.beat('cmp-b-1', T0, labels=['gpu', 'az2'])
        self.beat('cmp-b-2', T0, labels=['az2'])
        self.reconcile(at(10))
        self.assertEqual(['cmp-a-1', 'cmp-b-1'], self.agent_api.hosts())

    def test_untargeted_hosts_do_not_use_the_caps(self):
        self.flags(group='service', max_casts_per_cycle=1)
        self.add_image('a', targets={'hosts': ['z*']})
        self.beat('a1', T0)
        self.beat('z1', T0)
        result = self.reconcile(at(10))
        self.assertEqual((1, 0), (result['casts'], result['deferred']))
        self.assertEqual(['z1'], self.agent_api.hosts())

    def test_new_host_reporting_during_the_pass(self):
        # The new agent's own reports insert its rows after the pass
        # read what it lacks: its rows join the rounds, and the pass
        # goes on with the next image.
        self.add_image('a')
        self.add_image('b')
        self.beat('new', T0)
        attempts = self.db.attempts

        def attempts_then_report(image_id, host_ids):
            result = attempts(image_id, host_ids)
            self.db.record_report('new', image_id, states.DOWNLOADING, {},
                                  now=at(5))
            return result

        self.useFixture(fixtures.MockPatchObject(
            self.db, 'attempts', side_effect=attempts_then_report))
        result = self.reconcile(at(10))
        self.assertEqual((2, 0), (result['casts'], result['deferred']))
        self.assertEqual(['new', 'new'], self.agent_api.hosts())
        starts = {s['image_id']: s for s in self.notifier.events('start')}
        self.assertEqual({'a', 'b'}, set(starts))
        for image_id in ('a', 'b'):
            row = self.row(image_id, 'new')
            self.assertEqual(
                (states.PENDING, 1, starts[image_id]['round_id']),
                (row['status'], row['attempts'], row['round_id']))

    def test_only_the_named_hosts(self):
        self.add_image('a')
        self.beat('h1', T0)
        self.beat('h2', T0)
        self.reconcile(at(10), hosts=['h2'])
        self.assertEqual(['h2'], self.agent_api.hosts())
        self.assertEqual({'h2'}, set(self.db.image_hosts('a')))

    def test_timed_out_rounds_end_with_the_silent_hosts(self):
        self.flags(group='service', round_timeout=1000)
        self.add_image('a')
        self.beat('h1', T0)
        self.beat('h2', T0)
        self.reconcile(T0)
        self.db.record_report('h1', 'a', states.CACHED, {}, now=at(5))
        self.reconcile(at(999))
        self.assertEqual([], self.notifier.events('end'))
        self.reconcile(at(1001))
        end, = self.notifier.events('end')
        self.assertEqual(('a', 2, 1, ['h2']),
                         (end['image_id'], end['total'], end['answered'],
                          end['unanswered']))


class BoundedReadTest(ReconcilerTestCase):
    """A pass reads what is lacking only as far as its caps need."""

    def setUp(self):
        super().setUp()
        self.read = []
        lacking_rows = self.db.lacking_rows
        read = self.read

        @contextlib.contextmanager
        def counting(*args, **kwargs):
            with lacking_rows(*args, **kwargs) as rows:
                yield (read.append(row) or row for row in rows)

        self.useFixture(fixtures.MockPatchObject(
            self.db, 'lacking_rows', side_effect=counting))

    def four_by_four(self):
        """4 images x 4 hosts lacking, 3 casts a pass."""
        self.flags(group='service', max_casts_per_cycle=3)
        for image_id in 'abcd':
            self.add_image(image_id)
        for host in ('h1', 'h2', 'h3', 'h4'):
            self.beat(host, T0)

    def pass_(self, now, hosts=None):
        del self.read[:]
        return self.reconcile(now, hosts=hosts)

    def test_the_read_stops_at_the_caps(self):
        # The pass reads the 3 it casts and one more, not the 16 rows.
        self.four_by_four()
        result = self.pass_(at(10))
        self.assertEqual((3, 1, True), (result['casts'], result['deferred'],
                                        result['stopped_at_caps']))
        self.assertEqual(4, len(self.read))
        # The first image's hosts come first, as they always did.
        first = self.agent_api.casts[0][0]
        self.assertEqual({first}, {c[0] for c in self.agent_api.casts})

    def test_deferred_work_is_done_by_later_passes(self):
        self.four_by_four()
        sent = []
        for second in range(10, 70, 10):
            result = self.pass_(at(second))
            sent.append(result['casts'])
            self.assertLessEqual(len(self.read), 4)
        self.assertEqual([3, 3, 3, 3, 3, 1], sent)
        for image_id in 'abcd':
            self.assertEqual({'h1', 'h2', 'h3', 'h4'},
                             set(self.db.image_hosts(image_id)))
        result = self.pass_(at(70))
        self.assertEqual((0, 0, False), (result['casts'], result['deferred'],
                                         result['stopped_at_caps']))

    def test_per_host_cap_reads_on_to_fill_the_pass(self):
        # Rows of a host at its cap are passed over, not an end: the
        # pass reads on and casts to the other hosts.
        self.flags(group='service', max_casts_per_cycle=3,
                   max_casts_per_host=1)
        for image_id in 'abc':
            self.add_image(image_id)
        self.beat('h1', T0)
        self.beat('h2', T0)
        result = self.pass_(at(10))
        self.assertEqual((2, 4, False), (result['casts'], result['deferred'],
                                         result['stopped_at_caps']))
        self.assertEqual(['h1', 'h2'], self.agent_api.hosts())

    def test_a_pass_for_one_host_reads_that_host_alone(self):
        for image_id in 'ab':
            self.add_image(image_id)
        for host in ('h1', 'h2', 'h3'):
            self.beat(host, T0)
        result = self.pass_(at(10), hosts=['h2'])
        self.assertEqual(2, result['casts'])
        self.assertEqual(['h2', 'h2'], self.agent_api.hosts())
        self.assertEqual({'h2'}, {row.name for row in self.read})
        # Its rows to retry, too.
        self.db.record_report('h2', 'a', states.FAILED, {}, now=at(20))
        self.beat('h1', at(100))
        self.beat('h2', at(100))
        self.beat('h3', at(100))
        result = self.pass_(at(100), hosts=['h2'])
        self.assertEqual(['h2'], self.agent_api.hosts('a'))
        self.assertEqual({'h2'}, {row.name for row in self.read})

    def test_unknown_host_reads_nothing(self):
        self.add_image('a')
        self.beat('h1', T0)
        result = self.pass_(at(10), hosts=['nobody'])
        self.assertEqual((0, 0), (result['casts'], result['deferred']))
        self.assertEqual([], self.read)

    def test_many_hosts_are_filtered_as_they_are_read(self):
        self.useFixture(fixtures.MockPatch(
            'precache.service.convergence.HOST_FILTER_MAX', 1))
        self.add_image('a')
        for host in ('h1', 'h2', 'h3'):
            self.beat(host, T0)
        self.pass_(at(10), hosts=['h1', 'h3'])
        self.assertEqual(['h1', 'h3'], self.agent_api.hosts())


class DistributeTest(ReconcilerTestCase):

    def test_fanout_round_with_live_targets_pending(self):
        image = self.add_image('a', generation=3,
                               targets={'hosts': ['h*']})
        self.beat('h1', T0)
        self.beat('h2', T0)
        self.beat('h3', at(-1000))
        self.beat('x1', T0)
        self.reconciler.fan_out(None, image, now=at(10))
        self.assertEqual([('a', 3, None)], self.agent_api.casts)
        rows = self.db.image_hosts('a')
        self.assertEqual({'h1', 'h2'}, set(rows))
        for row in rows.values():
            self.assertEqual((states.PENDING, 3, at(10)),
                             (row['status'], row['generation'],
                              row['cast_at']))
        start, = self.notifier.events('start')
        self.assertEqual(('fanout', ['h1', 'h2'], 3),
                         (start['kind'], start['hosts'],
                          start['generation']))

    def test_fanout_without_live_hosts(self):
        image = self.add_image('a')
        self.reconciler.fan_out(None, image, now=at(10))
        self.assertEqual(['a'], self.agent_api.fanouts())
        self.assertEqual([], self.notifier.sent)

    def test_no_targeted_cast_right_after_a_fanout(self):
        image = self.add_image('a')
        self.beat('h1', T0)
        self.reconciler.fan_out(None, image, now=at(10))
        self.reconcile(at(20))
        self.assertEqual([], self.agent_api.casts)

    def test_host_down_during_the_fanout_catches_up(self):
        image = self.add_image('a')
        self.beat('h1', T0)
        self.beat('h2', at(-1000))
        self.reconciler.fan_out(None, image, now=at(10))
        self.assertEqual({'h1'}, set(self.db.image_hosts('a')))
        self.assertTrue(self.beat('h2', at(30)))
        self.reconcile(at(30), hosts=['h2'])
        self.assertEqual(['h2'], self.agent_api.hosts())


class SignedCastsTest(ReconcilerTestCase):
    """Every cast meta carries the service's signature and epoch."""

    def verify(self, meta):
        return self.signing_keys.verifier.verify(meta)

    def test_fanout_and_targeted_casts_are_signed(self):
        image = self.add_image('a')
        self.beat('h1', T0)
        self.reconciler.fan_out(None, image, now=at(10))
        self.beat('h2', at(20))
        self.reconciler.reconcile(None, now=at(20))
        self.assertEqual([('a', 1, None), ('a', 1, 'h2')],
                         self.agent_api.casts)
        for meta in self.agent_api.metas:
            self.verify(meta)
        # The database keeps the meta unsigned: it is signed when sent,
        # with the key of the day.
        self.assertNotIn('signature', self.db.get_image('a')['meta'])

    def test_distribute_uses_the_database_epoch_and_a_growing_counter(self):
        record = state_base.record('a')
        self.db.record_listing([record], complete=True, now=T0)
        sources = [{'method': 'http', 'url': 'http://origin/a',
                    'compression': 'zstd', 'size': 3}]
        meta, cast = self.reconciler.distribute(None, record, sources, None)
        self.assertTrue(cast)
        self.assertEqual(self.db.epoch(), meta['epoch'])
        self.assertRegex(meta['epoch'], '^[0-9a-f]{32}$')
        self.verify(self.agent_api.metas[-1])
        self.assertEqual(meta, {k: v for k, v in
                                self.agent_api.metas[-1].items()
                                if k != 'signature'})
        # A new decision gets a larger counter even if the clock went back
        # (a leader on a host whose clock is behind).
        far_ahead = meta['generation'] + 10 ** 12
        self.db.record_served('a', dict(meta, generation=far_ahead))
        second, cast = self.reconciler.distribute(
            None, record, sources, {'hosts': ['h1'], 'labels': []})
        self.assertTrue(cast)
        self.assertEqual(far_ahead + 1, second['generation'])
        # The same decision again is not cast again.
        third, cast = self.reconciler.distribute(
            None, record, sources, {'hosts': ['h1'], 'labels': []})
        self.assertFalse(cast)

    def test_epoch_is_kept_by_the_database(self):
        epoch = self.db.epoch()
        again = db_api.StateDB(self.make_db())
        self.addCleanup(again.engine.dispose)
        self.assertEqual(epoch, again.epoch())


class RenewedTempURLTest(ReconcilerTestCase):
    """A renewed TempURL is stored for later casts, not fanned out."""

    def sources(self, expires):
        return [{'method': 'swift', 'compression': 'zstd', 'size': 3,
                 'url': 'http://swift/v1/AUTH_t/c/i/a.img.zst'
                        '?temp_url_sig=%s&temp_url_expires=%d'
                        % ('ab' * 32, expires)}]

    def test_renewal_is_stored_without_a_fanout(self):
        image = state_base.record('i')
        self.db.record_listing([image], complete=True, now=T0)
        meta, cast = self.reconciler.distribute(None, image,
                                                self.sources(100), None)
        self.assertTrue(cast)
        self.assertEqual(['i'], self.agent_api.fanouts())

        renewed, cast = self.reconciler.distribute(None, image,
                                                   self.sources(200), None)

        self.assertFalse(cast)
        self.assertEqual(['i'], self.agent_api.fanouts())
        self.assertEqual(meta['generation'], renewed['generation'])
        stored = self.db.get_image('i')['meta']
        self.assertIn('temp_url_expires=200', stored['sources'][0]['url'])
        # Another object is another decision.
        other = self.sources(200)
        other[0]['url'] = other[0]['url'].replace('a.img', 'b.img')
        _meta, cast = self.reconciler.distribute(None, image, other, None)
        self.assertTrue(cast)
