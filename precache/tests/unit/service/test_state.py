"""StateKeeper: reports, heartbeats, the desired set and the CLI's views."""

import calendar
import queue
from unittest import mock

from oslo_utils import timeutils

from precache.common import exception
from precache.objects import states
from precache.objects import targets as targets_mod
from precache.service import factory
from precache.service import state
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0


def unix(when):
    return calendar.timegm(when.timetuple())


class StateKeeperTestCase(state_base.StateTestCase):

    def setUp(self):
        super().setUp()
        self.flags(group='service', service_down_time=180, retry_backoff=60,
                   report_timeout=3600, inventory_grace=120)
        self.clock(0)
        self.addCleanup(timeutils.clear_time_override)
        self.agent_api = state_base.FakeAgentAPI()
        self.notifier = state_base.FakeNotifier()
        parts = factory.build(self.conf, self.db, agent_api=self.agent_api,
                              notifier=self.notifier, with_pipeline=False)
        self.reconciler = parts.reconciler
        self.requests = queue.Queue()
        self.keeper = state.StateKeeper(self.conf, self.db, self.reconciler,
                                        self.notifier,
                                        requests=self.requests)

    def clock(self, seconds):
        """Set the service's clock to ``T0 + seconds``."""
        timeutils.set_time_override(at(seconds))

    def heartbeat(self, host, seconds, inventory=(), labels=()):
        self.clock(seconds)
        self.keeper.heartbeat(None, host, {
            'version': '1.0', 'labels': list(labels),
            'disk': {'total': 100, 'free': 50, 'cache_bytes': 50},
            'inventory': [self.entry(i) for i in inventory]})

    def report(self, host, image_id, status, seconds, **detail):
        self.clock(seconds)
        self.keeper.report(None, host, image_id, status, detail)


class AgentsTest(StateKeeperTestCase):

    def test_reports_emit_progress_and_end(self):
        image = self.add_image('a', generation=5)
        for host in ('h1', 'h2', 'h3'):
            self.beat(host, T0)
        self.reconciler.fan_out(None, image, now=at(1))
        start, = self.notifier.events('start')
        self.report('h2', 'a', states.DOWNLOADING, 2)
        self.assertEqual([], self.notifier.events('progress'))
        self.report('h2', 'a', states.CACHED, 3)
        self.report('h1', 'a', states.FAILED, 4, reason='disk full')
        self.report('h1', 'a', states.FAILED, 5, reason='disk full')
        self.assertEqual([], self.notifier.events('end'))
        self.report('h3', 'a', states.EXISTING, 6)
        progress = self.notifier.events('progress')
        self.assertEqual([('h2', 1, 3, states.CACHED, None),
                          ('h1', 2, 3, states.FAILED, 'disk full'),
                          ('h3', 3, 3, states.EXISTING, None)],
                         [(p['host'], p['index'], p['total'], p['status'],
                           p['reason']) for p in progress])
        self.assertEqual({start['round_id']},
                         {p['round_id'] for p in progress})
        end, = self.notifier.events('end')
        self.assertEqual((start['round_id'], 3, 3, 2, 1, []),
                         (end['round_id'], end['total'], end['answered'],
                          end['cached'], end['failed'], end['unanswered']))

    def test_how_each_host_landed_the_image_is_kept_and_told(self):
        image = self.add_image('a')
        for host in ('h1', 'h2'):
            self.beat(host, T0)
        self.reconciler.fan_out(None, image, now=at(1))
        self.report('h1', 'a', states.CACHED, 2, source='delta',
                    delta_base='base-image', bytes=1000)
        self.report('h2', 'a', states.CACHED, 3, source='http', bytes=9000)
        told = {p['host']: p['detail']
                for p in self.notifier.events('progress')}
        self.assertEqual(('delta', 'base-image', 1000),
                         (told['h1']['source'], told['h1']['delta_base'],
                          told['h1']['bytes']))
        lines = {line['host']: line for line in
                 self.keeper.show_image(None, 'a')['hosts']}
        self.assertEqual([('delta', 'base-image', 1000),
                          ('http', None, 9000)],
                         [(lines[h]['source'], lines[h]['delta_base'],
                           lines[h]['bytes']) for h in ('h1', 'h2')])

    def test_busy_answers_are_cast_again_soon_without_backoff(self):
        self.flags(group='service', busy_retry_delay=10)
        later = []
        self.reconciler.reconcile_later = (
            lambda host, delay: later.append((host, delay)))
        self.add_image('a')
        self.heartbeat('h1', 0)
        self.assertEqual(1, len(self.agent_api.casts))
        for attempt in range(3):  # the delay does not grow
            start = 100 * attempt
            self.report('h1', 'a', states.FAILED, start + 1, code='busy')
            self.assertEqual(('h1', 10), later[-1])
            self.reconciler.reconcile(None, now=at(start + 5))
            self.assertEqual(attempt + 1, len(self.agent_api.casts))
            self.heartbeat('h1', start + 11)
            self.reconciler.reconcile(None, now=at(start + 11))
            self.assertEqual(attempt + 2, len(self.agent_api.casts))
        # Any other failure backs off (retry_backoff, 60 s from the cast).
        self.report('h1', 'a', states.FAILED, 212, reason='disk full')
        self.heartbeat('h1', 240)
        self.reconciler.reconcile(None, now=at(240))
        self.assertEqual(4, len(self.agent_api.casts))

    def test_unknown_status_is_ignored(self):
        self.add_image('a')
        self.report('h1', 'a', 'exploded', 1)
        self.assertEqual({}, self.db.image_hosts('a'))
        self.assertEqual([], self.notifier.sent)

    def test_report_without_a_round_is_stored_silently(self):
        self.add_image('a')
        self.report('h1', 'a', states.CACHED, 1, bytes=3)
        self.assertEqual(states.CACHED, self.status('a', 'h1'))
        self.assertEqual([], self.notifier.sent)

    def test_new_host_gets_what_it_lacks_and_no_one_else(self):
        self.add_image('a')
        self.heartbeat('h1', 0)
        self.assertEqual([('a', 1, 'h1')], self.agent_api.casts)
        self.add_image('b', now=at(10))
        self.agent_api.casts = []
        # h1 stays up: its heartbeats cast nothing (the periodic pass
        # will bring it "b").
        self.heartbeat('h1', 60)
        self.assertEqual([], self.agent_api.casts)
        self.heartbeat('h2', 70)
        self.assertEqual([('a', 1, 'h2'), ('b', 1, 'h2')],
                         sorted(self.agent_api.casts))

    def test_host_back_up_gets_what_went_missing(self):
        self.add_image('a')
        self.add_image('b')
        self.heartbeat('h1', 0, inventory=['a', 'b'])
        self.heartbeat('h2', 0, inventory=['a', 'b'])
        self.assertEqual([], self.agent_api.casts)
        self.heartbeat('h2', 1000, inventory=['a', 'b'])
        # h1 was down for longer than service_down_time; Nova aged "a"
        # out meanwhile.
        self.heartbeat('h1', 1010, inventory=['b'])
        self.assertEqual([('a', 1, 'h1')], self.agent_api.casts)
        row = self.db.image_hosts('a')['h1']
        self.assertEqual((states.PENDING, 1), (row['status'],
                                               row['attempts']))

    def test_desired_has_served_images_targeting_the_host(self):
        self.add_image('every')
        self.add_image('cmp', targets={'hosts': ['cmp-*']})
        self.add_image('gpu', targets={'labels': ['gpu']})
        self.db.record_listing([state_base.record('unserved')],
                               complete=False, now=T0)

        def desired(host, labels):
            return sorted(m['image']['id']
                          for m in self.keeper.desired(None, host, labels))

        self.assertEqual(['cmp', 'every'], desired('cmp-1', []))
        self.assertEqual(['every', 'gpu'], desired('ctl-1', ['gpu']))
        self.assertEqual(['every'], desired('ctl-1', ['az1']))
        meta, = [m for m in self.keeper.desired(None, 'x', [])]
        self.assertEqual(1, meta['generation'])
        # Each entry is signed, as a cast is.
        self.signing_keys.verifier.verify(meta)
        self.assertEqual('http://origin/every', meta['sources'][0]['url'])

    def test_requested_images_with_a_pin(self):
        summary = self.keeper.request_cache(None, 'r', [], ['gpu'],
                                            unix(at(3600)))
        self.assertEqual('r', self.requests.get_nowait())
        self.assertTrue(self.requests.empty())
        self.assertTrue(summary['requested'])
        self.assertTrue(summary['desired'])
        self.assertFalse(summary['listed'])
        self.assertEqual('2026-11-02T09:00:00Z', summary['pinned_until'])
        image = self.db.get_image('r')
        self.assertEqual({'hosts': [], 'labels': ['gpu']},
                         image['request_targets'])
        self.assertEqual(at(3600), image['pinned_until'])
        # The pipeline serves it with the request's targets.
        self.db.record_served('r', state_base.make_meta(
            'r', targets={'hosts': [], 'labels': ['gpu']}), now=at(1))

        def desired():
            return [m['image']['id']
                    for m in self.keeper.desired(None, 'h', ['gpu'])]

        self.clock(3599)
        self.assertEqual(['r'], desired())
        self.clock(3600)
        self.assertEqual([], desired())
        self.assertFalse(self.keeper.list_image('r')['desired'])

    def test_a_request_recorded_elsewhere_is_served_by_the_leader(self):
        leading = [True]
        self.keeper.leadership = mock.Mock(
            is_leader=lambda: leading[0])
        self.keeper.serve_request(None, 'r')
        self.assertEqual('r', self.requests.get_nowait())
        # A follower (the sender among them) leaves it to the leader.
        leading[0] = False
        self.keeper.serve_request(None, 'r')
        self.assertTrue(self.requests.empty())

    def test_request_without_pin_until_released(self):
        self.keeper.request_cache(None, 'r', [], [], None)
        self.assertTrue(targets_mod.TargetMatcher(
            self.db.get_image('r')['request_targets']).everyone)
        self.db.record_served('r', state_base.make_meta('r'), now=at(1))
        self.clock(10 ** 8)
        self.assertEqual(['r'], [m['image']['id'] for m in
                                 self.keeper.desired(None, 'h', [])])
        summary = self.keeper.release(None, 'r')
        self.assertFalse(summary['requested'])
        self.assertFalse(summary['desired'])
        self.assertEqual([], self.keeper.desired(None, 'h', []))

    def test_release_keeps_a_listed_image_desired(self):
        self.add_image('a')
        self.keeper.request_cache(None, 'a', ['h1'], [], None)
        summary = self.keeper.release(None, 'a')
        self.assertTrue(summary['desired'])
        self.assertTrue(summary['listed'])

    def test_unknown_images(self):
        self.assertRaises(exception.ImageNotFound, self.keeper.release, None,
                          'nope')
        self.assertRaises(exception.ImageNotFound, self.keeper.show_image,
                          None, 'nope')


class ViewsTest(StateKeeperTestCase):

    def setUp(self):
        super().setUp()
        self.add_image('a')
        self.add_image('t', targets={'hosts': ['h1', 'h2', 'd']})
        for host in ('h1', 'h2', 'h3', 'h4', 'h5'):
            self.beat(host, T0, labels=['az1'])
        self.beat('d', at(-1000))
        # a: h1 cached, h2 failed, h3 missing, h4 pending, h5 nothing,
        # d (down) cached.
        ids = self.host_ids()
        self.db.open_round('a', 1, 'fanout',
                           [(ids[h], False, at(60))
                            for h in ('h1', 'h2', 'h4')], now=T0)
        self.db.record_report('h1', 'a', states.CACHED,
                              {'bytes': 10, 'seconds': 2.0}, now=at(5))
        self.db.record_report('h2', 'a', states.FAILED,
                              {'code': 'disk_full', 'reason': 'no room'},
                              now=at(6))
        self.db.record_report('d', 'a', states.CACHED, {'bytes': 7},
                              now=at(-1000))
        self.beat('h3', at(-300), inventory=['a'])
        self.beat('h3', T0)
        # t: h1 existing, h3 (not a target) existing.
        self.beat('h1', at(10), inventory=['t'])
        self.beat('h3', at(10), inventory=['t'])
        # n: no longer listed.
        self.add_image('n')
        self.db.record_listing([state_base.record(i) for i in 'at'],
                               complete=True, now=at(20))
        self.beat('h5', at(20), inventory=['n'])
        self.clock(30)

    def test_get_status(self):
        result = self.keeper.get_status(None)
        self.assertEqual({'total': 6, 'up': 5, 'down': 1}, result['hosts'])
        images = {i['image_id']: i for i in result['images']}
        self.assertEqual({'a', 't', 'n'}, set(images))
        self.assertEqual(5, images['a']['live_targets'])
        self.assertEqual({states.CACHED: 1, states.FAILED: 1,
                          states.MISSING: 1, states.PENDING: 1,
                          'waiting': 1}, images['a']['counts'])
        self.assertEqual(2, images['t']['live_targets'])
        self.assertEqual({states.EXISTING: 1, 'waiting': 1},
                         images['t']['counts'])
        self.assertFalse(images['n']['desired'])
        self.assertEqual(0, images['n']['live_targets'])
        self.assertEqual({states.EXISTING: 1, 'waiting': 0},
                         images['n']['counts'])
        # Alone (no leadership given), the instance leads.
        self.assertEqual({'instance': self.conf.host,
                          'leader': self.conf.host, 'leader_since': None},
                         result['service'])

    def test_show_image(self):
        result = self.keeper.show_image(None, 'a')
        self.assertEqual('a', result['image']['image_id'])
        self.assertTrue(result['image']['desired'])
        self.assertEqual({'live_targets': 5, 'done': 1, 'failed': 1,
                          'missing': 1, 'in_progress': 1, 'waiting': 1,
                          'bytes': 10}, result['summary'])
        hosts = {h['host']: h for h in result['hosts']}
        self.assertEqual(['d', 'h1', 'h2', 'h3', 'h4', 'h5'],
                         [h['host'] for h in result['hosts']])
        self.assertFalse(hosts['d']['up'])
        self.assertEqual(states.CACHED, hosts['d']['status'])
        self.assertEqual((states.FAILED, 'disk_full', 'no room', 1,
                          '2026-11-02T08:01:00Z'),
                         (hosts['h2']['status'], hosts['h2']['code'],
                          hosts['h2']['reason'], hosts['h2']['attempts'],
                          hosts['h2']['next_attempt_at']))
        self.assertIsNone(hosts['h5']['status'])
        self.assertTrue(all(h['targeted'] for h in result['hosts']))

    def test_show_targeted_image(self):
        result = self.keeper.show_image(None, 't')
        targeted = {h['host']: h['targeted'] for h in result['hosts']}
        self.assertEqual({'d': True, 'h1': True, 'h2': True, 'h3': False,
                          'h4': False, 'h5': False}, targeted)
        self.assertEqual((2, 1, 1), (result['summary']['live_targets'],
                                     result['summary']['done'],
                                     result['summary']['waiting']))

    def test_show_undesired_image_targets_no_one(self):
        result = self.keeper.show_image(None, 'n')
        self.assertFalse(any(h['targeted'] for h in result['hosts']))
        self.assertEqual(0, result['summary']['live_targets'])

    def test_list_hosts(self):
        hosts = {h['name']: h for h in self.keeper.list_hosts(None)}
        self.assertEqual({'d', 'h1', 'h2', 'h3', 'h4', 'h5'}, set(hosts))
        self.assertEqual((True, 2, 0), (hosts['h1']['up'],
                                        hosts['h1']['images_cached'],
                                        hosts['h1']['images_failed']))
        self.assertEqual((0, 1), (hosts['h2']['images_cached'],
                                  hosts['h2']['images_failed']))
        self.assertEqual(1, hosts['h3']['images_cached'])
        self.assertEqual((0, 0), (hosts['h4']['images_cached'],
                                  hosts['h4']['images_failed']))
        self.assertEqual((False, 1), (hosts['d']['up'],
                                      hosts['d']['images_cached']))
        self.assertEqual('2026-11-02T08:00:20Z',
                         hosts['h5']['last_heartbeat'])
        self.assertEqual(['az1'], hosts['h4']['labels'])
        # A heartbeat's labels replace the previous ones.
        self.assertEqual([], hosts['h5']['labels'])

    def test_the_services_failures_with_an_image(self):
        fresh = self.keeper.list_image('t')
        self.assertEqual((0, None, None, False), (
            fresh['failures'], fresh['failed_at'], fresh['retry_at'],
            fresh['retrying']))
        for second in (21, 22):
            self.db.record_image_failure(
                't', 'hash mismatch', 'v1', lambda n: 60 * n,
                now=at(second))
        shown = self.keeper.show_image(None, 't')['image']
        self.assertEqual(('hash mismatch', 2, '2026-11-02T08:00:22Z',
                          '2026-11-02T08:02:22Z', False), (
            shown['error'], shown['failures'], shown['failed_at'],
            shown['retry_at'], shown['retrying']))
        listed = {i['image_id']: i for i in self.keeper.list_images(None)}
        self.assertEqual(shown, listed['t'])
        status = {i['image_id']: i
                  for i in self.keeper.get_status(None)['images']}
        self.assertEqual(2, status['t']['failures'])
        self.assertEqual(0, status['a']['failures'])
        self.db.record_image_retry('t', now=at(142))
        self.assertTrue(self.keeper.list_image('t')['retrying'])

    def test_list_images(self):
        images = {i['image_id']: i for i in self.keeper.list_images(None)}
        self.assertEqual({'a': True, 't': True, 'n': False},
                         {k: v['desired'] for k, v in images.items()})
        self.assertEqual({'hosts': ['h1', 'h2', 'd']}, images['t']['targets'])
