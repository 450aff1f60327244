"""The pipeline's backoff of an image it fails to fetch or serve.

A fake clock (``timeutils.set_time_override``) runs the pipeline at
chosen seconds after ``T0``; the database is real (sqlite).
"""

import fixtures
from oslo_utils import timeutils

from precache.common import exception
from precache.service import factory
from precache.service import pipeline
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0
from precache.tests.unit.service import test_pipeline
from precache.tests.unit.service import test_pipeline_state


class CountingFetcher(test_pipeline.FakeFetcher):
    """Fails the images of ``broken``; ``tried`` lists every fetch."""

    def __init__(self):
        super().__init__(broken=set())
        self.tried = []
        self.during = None

    def fetch(self, image):
        self.tried.append(image.id)
        if self.during:
            self.during(image)
        return super().fetch(image)


class PipelineBackoffTest(state_base.StateTestCase):

    def setUp(self):
        super().setUp()
        self.flags(group='service', fetch_workers=1, image_retry_backoff=60,
                   image_retry_backoff_max=240)
        timeutils.set_time_override(T0)
        self.addCleanup(timeutils.clear_time_override)
        lister_class = test_pipeline_state.DictLister
        self.config_fixture.register_opts(
            lister_class.all_config_opts(),
            group=lister_class.get_config_group())
        self.lister = lister_class(self.conf)
        self.fetcher = CountingFetcher()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='precache.service.pipeline'))
        parts = factory.build(
            self.conf, self.db, agent_api=state_base.FakeAgentAPI(),
            notifier=state_base.FakeNotifier(), listers=[self.lister],
            fetcher=self.fetcher, server=test_pipeline.FakeServer())
        self.keeper = parts.state
        self.pipe = parts.pipeline

    def run_at(self, seconds):
        timeutils.set_time_override(at(seconds))
        self.fetcher.tried = []
        return {o.image_id: o for o in self.pipe.run(None)}

    def failure(self, image_id):
        image = self.db.get_image(image_id)
        return (image['failures'], image['retry_at'])

    def failure_lines(self, image_id):
        return [line for line in self.log.output.splitlines()
                if line.startswith('Image %s failed' % image_id)]

    def test_backoff_doubles_up_to_its_cap(self):
        self.lister.images = {'a': b'bad', 'b': b'good'}
        self.fetcher.broken = {'a'}
        outcomes = self.run_at(1)
        self.assertEqual(['a', 'b'], self.fetcher.tried)
        self.assertIn('expected y', outcomes['a'].error)
        self.assertFalse(outcomes['a'].deferred)
        self.assertEqual((1, at(61)), self.failure('a'))
        self.assertEqual((0, None), self.failure('b'))
        # One line per failure, with the count and the next try.
        [line] = self.failure_lines('a')
        self.assertIn('failed (1 time(s) in a row), next try at '
                      '2026-11-02 08:01:01 UTC', line)
        self.assertIn('expected y', line)

        expected = [
            # (run at, tried?, failures, next try) for "a"
            (30, False, 1, 61),
            (60, False, 1, 61),
            (61, True, 2, 61 + 120),
            (180, False, 2, 181),
            (181, True, 3, 181 + 240),
            (421, True, 4, 421 + 240),  # capped at 240 s
            (661, True, 5, 661 + 240),
        ]
        for second, tried, failures, retry in expected:
            outcomes = self.run_at(second)
            self.assertEqual(tried, 'a' in self.fetcher.tried, second)
            self.assertEqual(not tried, outcomes['a'].deferred, second)
            self.assertIn('expected y', outcomes['a'].error)
            self.assertEqual((failures, at(retry)), self.failure('a'),
                             second)
            self.assertIn('b', self.fetcher.tried)
        self.assertEqual(5, len(self.failure_lines('a')))
        self.assertIn('Pipeline run done: 1 image(s) served, 0 cast, '
                      '0 failed, 1 waiting for their retry backoff',
                      self.log.output)

    def test_a_success_resets_the_backoff(self):
        self.lister.images = {'a': b'x'}
        self.fetcher.broken = {'a'}
        self.run_at(1)
        self.run_at(61)
        self.assertEqual((2, at(181)), self.failure('a'))
        self.fetcher.broken = set()
        outcomes = self.run_at(181)
        self.assertTrue(outcomes['a'].distributed)
        image = self.db.get_image('a')
        self.assertEqual((0, None, None, None, None), (
            image['failures'], image['retry_at'], image['error'],
            image['failed_at'], image['failed_version']))
        # A new failure starts from the first backoff again.
        self.lister.images = {'a': b'y'}
        self.fetcher.broken = {'a'}
        self.run_at(200)
        self.assertEqual((1, at(260)), self.failure('a'))

    def test_backoff_options_are_read_at_each_failure(self):
        self.lister.images = {'a': b'x'}
        self.fetcher.broken = {'a'}
        self.run_at(1)
        self.assertEqual((1, at(61)), self.failure('a'))
        self.flags(group='service', image_retry_backoff=10,
                   image_retry_backoff_max=15)
        self.run_at(61)
        self.assertEqual((2, at(76)), self.failure('a'))

    def test_a_changed_image_is_tried_at_once(self):
        self.lister.images = {'a': b'corrupt'}
        self.fetcher.broken = {'a'}
        self.run_at(1)
        self.run_at(61)
        self.assertEqual((2, at(181)), self.failure('a'))
        self.run_at(70)
        self.assertEqual([], self.fetcher.tried)
        # New bytes in Glance: tried at once; its failure is its first.
        self.lister.images = {'a': b'uploaded again'}
        self.run_at(71)
        self.assertEqual(['a'], self.fetcher.tried)
        self.assertEqual((1, at(131)), self.failure('a'))
        # Fixed: served at once.
        self.lister.images = {'a': b'fixed'}
        self.fetcher.broken = set()
        outcomes = self.run_at(72)
        self.assertTrue(outcomes['a'].distributed)
        self.assertEqual((0, None), self.failure('a'))

    def test_fingerprint_follows_hash_size_and_updated_at(self):
        base = state_base.record('a', data=b'x')
        same = state_base.record('a', data=b'x', name='renamed')
        self.assertEqual(base.fingerprint, same.fingerprint)
        for changed in (state_base.record('a', data=b'y'),
                        state_base.record('a', data=b'xx')):
            self.assertNotEqual(base.fingerprint, changed.fingerprint)
        base.updated_at = '2026-11-02T08:00:00Z'
        moved = state_base.record('a', data=b'x')
        moved.updated_at = '2026-11-02T09:00:00Z'
        self.assertNotEqual(base.fingerprint, moved.fingerprint)
        self.assertEqual(64, len(base.fingerprint))

    def test_an_on_demand_request_is_tried_at_once(self):
        self.lister.images = {'a': b'x'}
        self.fetcher.broken = {'a'}
        self.run_at(1)
        self.keeper.request_cache(None, 'a', [], [], None)
        timeutils.set_time_override(at(5))
        outcome = self.pipe.process_request(None, 'a')
        self.assertIn('expected y', outcome.error)
        self.assertEqual((2, at(125)), self.failure('a'))
        self.fetcher.broken = set()
        timeutils.set_time_override(at(6))
        self.assertTrue(self.pipe.process_request(None, 'a').distributed)
        self.assertEqual((0, None), self.failure('a'))

    def test_a_retry_is_marked_while_it_runs(self):
        self.lister.images = {'a': b'x', 'b': b'y'}
        self.fetcher.broken = {'a'}
        self.run_at(1)
        seen = {}
        self.fetcher.during = lambda image: seen.setdefault(
            image.id, self.db.get_image(image.id)['retrying_since'])
        self.run_at(61)
        self.assertEqual({'a': at(61), 'b': None}, seen)
        self.assertIsNone(self.db.get_image('a')['retrying_since'])
        self.assertEqual(2, self.db.get_image('a')['failures'])

    def test_unknown_requested_image_is_looked_up_after_its_backoff(self):
        lookups = []
        self.lister.get = lambda image_id: lookups.append(image_id)
        self.keeper.request_cache(None, 'r', [], [], None)
        outcomes = self.run_at(1)
        self.assertEqual(pipeline.UNKNOWN_IMAGE, outcomes['r'].error)
        self.assertEqual(['r'], lookups)
        self.assertEqual((1, at(61)), self.failure('r'))
        outcomes = self.run_at(30)
        self.assertTrue(outcomes['r'].deferred)
        self.assertEqual(['r'], lookups)
        self.run_at(61)
        self.assertEqual(['r', 'r'], lookups)
        self.assertEqual((2, at(181)), self.failure('r'))
        # Known at last: fetched and served.
        self.lister.get = lambda image_id: state_base.record(image_id)
        outcomes = self.run_at(181)
        self.assertTrue(outcomes['r'].distributed)
        self.assertEqual((0, None), self.failure('r'))

    def test_a_fetch_abandoned_at_stop_is_no_failure(self):
        self.lister.images = {'a': b'x'}

        def stop(image):
            self.pipe.cancel()
            raise exception.FetchFailed(image_id=image.id,
                                        reason='the service is stopping')

        self.fetcher.during = stop
        outcomes = self.run_at(1)
        self.assertIn('the service is stopping', outcomes['a'].error)
        self.assertEqual((0, None), self.failure('a'))
        self.assertEqual([], self.failure_lines('a'))
