"""The service's List -> Fetch -> Serve -> Distribute pipeline."""

import hashlib
import threading

from precache.common import exception
from precache.objects import image
from precache.objects import meta
from precache.service.listers import base as lister_base
from precache.tests import base
from precache.tests.fixtures import distributor


def record(image_id, data=b'bytes', lister='fake'):
    return image.ImageRecord(
        id=image_id, disk_format='raw', size=len(data),
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest(),
        listed_by=[lister])


class FakeLister(lister_base.ImageLister):
    def __init__(self, records, name='fake', error=None):
        self.records = records
        self.name = name
        self.error = error

    def list(self):
        if self.error:
            raise self.error
        return [record(r.id, lister=self.name) for r in self.records]

    def targets(self):
        return None


class FakeFetcher(object):
    def __init__(self, broken=()):
        self.broken = broken
        self.fetched = []

    def fetch(self, image):
        if image.id in self.broken:
            raise exception.HashMismatch(image_id=image.id, algo='sha512',
                                         actual='x', expected='y')
        self.fetched.append(image.id)
        return '/staging/' + image.id

    def cancel(self):
        pass


class BlockingFetcher(FakeFetcher):
    """Fetches until cancelled, like a long download."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()
        self._cancelled = threading.Event()

    def fetch(self, image):
        self.started.set()
        self._cancelled.wait(30)
        raise exception.FetchFailed(image_id=image.id,
                                    reason='the service is stopping')

    def cancel(self):
        self._cancelled.set()


class FakeServer(object):
    needs_local_copy = True
    carries_extra_artifacts = False

    def __init__(self):
        self.served = []
        self.retired = []

    def serve(self, image, path):
        self.served.append((image.id, path))
        return [{'method': 'http', 'url': 'http://origin/' + image.id,
                 'compression': 'zstd', 'size': 3}]

    def retire(self, image_id):
        self.retired.append(image_id)

    def start(self):
        pass

    def stop(self):
        pass


class FakeAgentAPI(object):
    def __init__(self):
        self.casts = []

    def cache(self, context, image_id, meta, host=None):
        self.casts.append((image_id, meta, host))


class PipelineTest(base.TestCase):

    def make(self, listers, fetcher=None, server=None):
        self.agent_api = FakeAgentAPI()
        self.fetcher = fetcher or FakeFetcher()
        self.server = server or FakeServer()
        return distributor.fanout_pipeline(
            self.conf, self.tempdir, self.agent_api, listers=listers,
            fetcher=self.fetcher, server=self.server)

    def test_listers_are_merged_by_image_id(self):
        a, b, c = record('a'), record('b'), record('c')
        pipe = self.make([FakeLister([a, b], 'one'),
                          FakeLister([b, c], 'two')])
        images = {r.id: r for r in pipe.list_images().images}
        self.assertEqual({'a', 'b', 'c'}, set(images))
        self.assertEqual(['one', 'two'], images['b'].listed_by)

    def test_each_image_is_fetched_served_and_fanned_out(self):
        pipe = self.make([FakeLister([record('a'), record('b')])])
        outcomes = pipe.run(context=None)
        self.assertTrue(all(o.distributed for o in outcomes))
        self.assertEqual({'a', 'b'}, set(self.fetcher.fetched))
        self.assertIn(('a', '/staging/a'), self.server.served)
        casts = {c[0]: c for c in self.agent_api.casts}
        self.assertEqual({'a', 'b'}, set(casts))
        image_id, sent_meta, host = casts['a']
        self.assertIsNone(host)  # fanout
        meta.validate(sent_meta)
        self.assertEqual('a', sent_meta['image']['id'])
        self.assertEqual('http://origin/a', sent_meta['sources'][0]['url'])

    def test_wait_idle_waits_for_the_cancelled_fetch(self):
        fetcher = BlockingFetcher()
        pipe = self.make([FakeLister([record('a')])], fetcher=fetcher)
        self.assertTrue(pipe.wait_idle(0))
        runner = threading.Thread(target=pipe.run, args=(None,))
        runner.start()
        self.addCleanup(runner.join, 30)
        self.assertTrue(fetcher.started.wait(30))
        self.assertFalse(pipe.wait_idle(0.1))  # still fetching
        pipe.cancel()
        self.assertTrue(pipe.wait_idle(30))
        runner.join(30)
        self.assertEqual([], self.agent_api.casts)

    def test_a_broken_image_is_skipped_and_the_others_go_on(self):
        pipe = self.make([FakeLister([record('good'), record('bad')])],
                         fetcher=FakeFetcher(broken=('bad',)))
        outcomes = {o.image_id: o for o in pipe.run(context=None)}
        self.assertTrue(outcomes['good'].distributed)
        self.assertFalse(outcomes['bad'].distributed)
        self.assertIn('bad', outcomes['bad'].error)
        self.assertEqual(['good'], [c[0] for c in self.agent_api.casts])

    def test_a_failing_lister_does_not_hide_the_others(self):
        pipe = self.make([FakeLister([], 'down', error=RuntimeError('503')),
                          FakeLister([record('a')], 'up')])
        listing = pipe.list_images()
        self.assertEqual(['a'], [r.id for r in listing.images])
        self.assertFalse(listing.complete)

    def test_server_without_local_copy_skips_the_fetch(self):
        server = FakeServer()
        server.needs_local_copy = False
        pipe = self.make([FakeLister([record('a')])], server=server)
        pipe.run(context=None)
        self.assertEqual([], self.fetcher.fetched)
        self.assertEqual([('a', None)], server.served)

    def test_no_lister_is_a_configuration_error(self):
        self.assertRaises(exception.ConfigurationError, self.make, [])
