"""The pipeline with a state: fanouts only when an image's meta changes."""

from oslo_utils import timeutils

from precache.objects import states
from precache.service import factory
from precache.service.listers import base as lister_base
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0
from precache.tests.unit.service import test_pipeline


class DictLister(lister_base.ImageLister):
    """Lists ``self.images`` (id -> bytes); targets from its options."""

    name = 'one'

    def __init__(self, conf):
        super().__init__(conf)
        self.images = {}
        self.error = None

    @classmethod
    def get_config_group(cls):
        return cls.name + '_lister'

    def list(self):
        if self.error:
            raise self.error
        return [state_base.record(image_id, self.name, data)
                for image_id, data in sorted(self.images.items())]


class OtherLister(DictLister):
    name = 'two'


class PipelineStateTest(state_base.StateTestCase):

    def setUp(self):
        super().setUp()
        self.flags(group='service', fetch_workers=1)
        timeutils.set_time_override(T0)
        self.addCleanup(timeutils.clear_time_override)
        for cls in (DictLister, OtherLister):
            self.config_fixture.register_opts(
                cls.all_config_opts(), group=cls.get_config_group())
        self.one = DictLister(self.conf)
        self.two = OtherLister(self.conf)
        self.agent_api = state_base.FakeAgentAPI()
        self.notifier = state_base.FakeNotifier()
        parts = factory.build(
            self.conf, self.db, agent_api=self.agent_api,
            notifier=self.notifier, listers=[self.one, self.two],
            fetcher=test_pipeline.FakeFetcher(),
            server=test_pipeline.FakeServer())
        self.keeper = parts.state
        self.pipe = parts.pipeline

    def run_at(self, seconds):
        timeutils.set_time_override(at(seconds))
        self.agent_api.casts = []
        return {o.image_id: o for o in self.pipe.run(None)}

    def test_unchanged_image_is_not_cast_again(self):
        self.beat('h1', T0)
        self.one.images = {'a': b'one'}
        outcomes = self.run_at(1)
        self.assertTrue(outcomes['a'].distributed)
        self.assertEqual(['a'], self.agent_api.fanouts())
        generation = self.db.get_image('a')['generation']
        self.assertEqual(outcomes['a'].meta['generation'], generation)
        self.assertEqual(states.PENDING, self.status('a', 'h1'))
        self.beat('h1', at(60))
        outcomes = self.run_at(61)
        self.assertFalse(outcomes['a'].distributed)
        self.assertIsNone(outcomes['a'].error)
        self.assertEqual([], self.agent_api.casts)
        self.assertEqual(generation, self.db.get_image('a')['generation'])
        self.assertEqual(generation, outcomes['a'].meta['generation'])

    def test_changed_image_is_cast_again(self):
        self.one.images = {'a': b'one', 'b': b'same'}
        self.run_at(1)
        first = self.db.get_image('a')['generation']
        self.one.images = {'a': b'two', 'b': b'same'}
        self.run_at(61)
        self.assertEqual(['a'], self.agent_api.fanouts())
        image = self.db.get_image('a')
        self.assertGreater(image['generation'], first)
        self.assertEqual(image['generation'], image['meta']['generation'])
        self.assertEqual(3, image['meta']['image']['size'])

    def test_targets_of_two_listers_are_united(self):
        self.flags(group='one_lister', target_hosts=['cmp-a-*'])
        self.flags(group='two_lister', target_labels=['gpu'])
        self.one.images = {'a': b'x', 'only-one': b'y'}
        self.two.images = {'a': b'x'}
        outcomes = self.run_at(1)
        self.assertEqual({'hosts': ['cmp-a-*'], 'labels': ['gpu']},
                         outcomes['a'].meta['targets'])
        self.assertEqual({'hosts': ['cmp-a-*'], 'labels': []},
                         outcomes['only-one'].meta['targets'])
        self.assertEqual(['one', 'two'],
                         self.db.get_image('a')['listed_by'])
        self.assertEqual({'hosts': ['cmp-a-*'], 'labels': ['gpu']},
                         self.db.get_image('a')['targets'])

    def test_a_lister_for_every_host_wins(self):
        self.flags(group='one_lister', target_hosts=['cmp-a-*'])
        self.one.images = {'a': b'x'}
        self.two.images = {'a': b'x'}
        outcomes = self.run_at(1)
        self.assertIsNone(outcomes['a'].meta['targets'])

    def test_targeted_hosts_only_are_pending(self):
        self.flags(group='one_lister', target_hosts=['cmp-a-*'])
        self.beat('cmp-a-1', T0)
        self.beat('cmp-b-1', T0)
        self.one.images = {'a': b'x'}
        self.run_at(1)
        self.assertEqual(['a'], self.agent_api.fanouts())
        self.assertEqual({'cmp-a-1'}, set(self.db.image_hosts('a')))

    def test_new_targets_are_a_change(self):
        self.one.images = {'a': b'x'}
        self.run_at(1)
        self.flags(group='one_lister', target_labels=['az1'])
        outcomes = self.run_at(61)
        self.assertTrue(outcomes['a'].distributed)
        self.assertEqual({'hosts': [], 'labels': ['az1']},
                         self.db.get_image('a')['targets'])

    def test_failing_lister_keeps_its_images(self):
        self.one.images = {'a': b'x'}
        self.two.images = {'b': b'y'}
        self.run_at(1)
        self.two.error = RuntimeError('503')
        outcomes = self.run_at(61)
        self.assertEqual({'a'}, set(outcomes))
        self.assertTrue(self.db.get_image('b')['listed'])
        self.two.error = None
        self.two.images = {}
        self.run_at(121)
        self.assertFalse(self.db.get_image('b')['listed'])

    def test_request_for_every_host_widens_the_listers_targets(self):
        self.flags(group='one_lister', target_hosts=['cmp-a-*'])
        self.one.images = {'a': b'x'}
        self.run_at(1)
        self.keeper.request_cache(None, 'a', [], [], None)
        outcomes = self.run_at(61)
        self.assertTrue(outcomes['a'].distributed)
        self.assertIsNone(outcomes['a'].meta['targets'])

    def test_request_with_labels_adds_to_the_listers_targets(self):
        self.flags(group='one_lister', target_hosts=['cmp-a-*'])
        self.one.images = {'a': b'x'}
        self.run_at(1)
        self.keeper.request_cache(None, 'a', [], ['gpu'], None)
        outcomes = self.run_at(61)
        self.assertEqual({'hosts': ['cmp-a-*'], 'labels': ['gpu']},
                         outcomes['a'].meta['targets'])

    def test_requested_image_no_lister_lists(self):
        self.one.images = {'a': b'x'}
        self.run_at(1)
        # A lister knows "r" (get) without listing it.
        self.one.get = lambda image_id: state_base.record(image_id)
        self.keeper.request_cache(None, 'r', ['h1'], [], None)
        outcomes = self.run_at(61)
        self.assertTrue(outcomes['r'].distributed)
        self.assertEqual({'hosts': ['h1'], 'labels': []},
                         outcomes['r'].meta['targets'])
        self.assertEqual(['r'], self.agent_api.fanouts())
