"""The agent's endpoint: idempotence, targeting, reports, keep-alive."""

import threading
import time

import fixtures

from precache.agent import manager
from precache.common import exception
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import states
from precache.tests import base
from precache.tests.fixtures import signing as signing_fixture
from precache.tests.unit.objects import test_meta

SOURCES = [test_meta.HTTP_SOURCE]


class FakeStore(object):
    def __init__(self):
        self.files = set()
        self.touched = []
        self.expired_with = None
        self.space_error = None

    def exists(self, image):
        return image.id in self.files

    def path(self, image):
        return '/store/' + image.id

    def touch(self, image):
        self.touched.append(image.id)

    def check_space(self, image):
        if self.space_error:
            raise self.space_error

    def land(self, image, write):
        write(object())
        self.files.add(image.id)
        return states.CACHED

    def expire(self, wanted_ids):
        self.expired_with = wanted_ids

    def disk_usage(self):
        return {'total': 100, 'free': 50, 'cache_bytes': 10}

    def inventory(self):
        return [{'name': 'x', 'image_id': 'img'}]


class FakeDownloader(object):
    def __init__(self, gate=None, error=None):
        self.calls = 0
        self.gate = gate
        self.error = error
        self.started = threading.Event()

    def download(self, image, sources, fileobj, cancel=None,
                 ticket=None):
        self.calls += 1
        self.started.set()
        if self.gate:
            self.gate.wait(10)
        if self.error:
            raise self.error
        return {'method': 'http', 'bytes_received': 4}


class FakeIndexer(object):
    def __init__(self):
        self.landed_paths = []
        self.rescans = 0
        self.followed = []

    def follow(self, average):
        self.followed.append(average)

    def landed(self, path):
        self.landed_paths.append(path)

    def rescan(self):
        self.rescans += 1


class FakeServiceAPI(object):
    """Keeps answers in ``reports``, ``downloading`` notices apart."""

    def __init__(self, desired=()):
        self.reports = []
        self.downloading = []
        self.heartbeats = []
        self.desired_metas = desired
        self.desired_calls = []

    def report(self, context, host, image_id, status, detail):
        if status == 'downloading':
            self.downloading.append(image_id)
            return
        self.reports.append((host, image_id, status, detail))

    def desired(self, context, host, labels):
        self.desired_calls.append((host, labels))
        if isinstance(self.desired_metas, Exception):
            raise self.desired_metas
        return self.desired_metas

    def heartbeat(self, context, host, status):
        self.heartbeats.append((host, status))


class AgentManagerTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.flags(host='cmp-1')
        self.flags(group='agent', labels=['az1'])
        self.store = FakeStore()
        self.api = FakeServiceAPI()
        self.image = test_meta.make_image()

    def make(self, downloader=None):
        self.downloader = downloader or FakeDownloader()
        return manager.AgentManager(self.conf, self.api, store=self.store,
                                    downloader=self.downloader)

    def meta(self, **kw):
        kw.setdefault('epoch', base.EPOCH)
        return self.sign(meta_mod.build(self.image, SOURCES, **kw))

    def meta_of(self, image):
        """A signed meta of another image."""
        return self.sign(meta_mod.build(image, SOURCES, epoch=base.EPOCH))

    def cache(self, agent, image_id, meta):
        """Cast ``cache`` and wait until the agent is idle again."""
        agent.cache(None, image_id, meta)
        self.assertTrue(agent.wait_idle(10))

    def test_cache_lands_and_reports(self):
        agent = self.make()
        self.cache(agent, self.image.id, self.meta())
        self.assertEqual(1, self.downloader.calls)
        self.assertEqual([self.image.id], self.api.downloading)
        (host, image_id, status, detail), = self.api.reports
        self.assertEqual(('cmp-1', self.image.id, 'cached'),
                         (host, image_id, status))
        self.assertEqual(4, detail['bytes'])
        self.assertEqual('http', detail['source'])

    def test_image_from_a_delta_reports_its_base(self):
        class DeltaDownloader(FakeDownloader):
            def download(self, *args, **kw):
                super().download(*args, **kw)
                return {'method': 'delta', 'bytes_received': 2}

        indexer = FakeIndexer()
        agent = manager.AgentManager(self.conf, self.api, store=self.store,
                                     downloader=DeltaDownloader(),
                                     indexer=indexer)
        delta_source = {'method': 'delta', 'url': 'http://127.0.0.1/d.zst',
                        'compression': 'zstd', 'base': {'id': 'img-0'}}
        self.cache(agent, self.image.id, self.sign(meta_mod.build(
            self.image, [delta_source] + SOURCES, epoch=base.EPOCH)))
        (_host, _image_id, status, detail), = self.api.reports
        self.assertEqual(('cached', 'delta', 'img-0', 2),
                         (status, detail['source'], detail['delta_base'],
                          detail['bytes']))
        # The chunk index learns of the new file; the keep-alive rescans.
        self.assertEqual(['/store/' + self.image.id], indexer.landed_paths)
        agent.keep_alive()
        self.assertEqual(1, indexer.rescans)

    def test_chunk_index_follows_the_delta_before_downloading(self):
        indexer = FakeIndexer()

        class Downloader(FakeDownloader):
            def download(self, *args, **kw):
                self.followed = list(indexer.followed)
                return super().download(*args, **kw)

        agent = manager.AgentManager(self.conf, self.api, store=self.store,
                                     downloader=Downloader(),
                                     indexer=indexer)
        delta_source = {'method': 'delta', 'url': 'http://127.0.0.1/d.zst',
                        'compression': 'zstd', 'base': {'id': 'img-0'},
                        'chunking': {'average': 8192}}
        self.cache(agent, self.image.id, self.sign(meta_mod.build(
            self.image, [delta_source] + SOURCES, epoch=base.EPOCH)))
        self.assertEqual([8192], agent.downloader.followed)
        self.assertEqual('cached', self.api.reports[0][2])

    def test_full_download_reports_no_base(self):
        agent = self.make()
        self.cache(agent, self.image.id, self.meta())
        self.assertIsNone(self.api.reports[0][3]['delta_base'])
        self.assertIsNone(agent.indexer)  # [chunk_index] is off

    def test_second_request_reports_existing_and_touches(self):
        agent = self.make()
        self.cache(agent, self.image.id, self.meta())
        self.cache(agent, self.image.id, self.meta())
        self.assertEqual(1, self.downloader.calls)
        self.assertEqual('existing', self.api.reports[1][2])
        self.assertEqual([self.image.id], self.store.touched)

    def test_concurrent_requests_download_once(self):
        gate = threading.Event()
        agent = self.make(FakeDownloader(gate=gate))
        agent.cache(None, self.image.id, self.meta())
        self.assertTrue(self.downloader.started.wait(10))
        agent.cache(None, self.image.id, self.meta())  # ignored
        gate.set()
        self.assertTrue(agent.wait_idle(10))
        self.assertEqual(1, self.downloader.calls)
        self.assertEqual(['cached'], [r[2] for r in self.api.reports])

    def test_failure_is_reported_with_code_and_reason(self):
        error = exception.HashMismatch(image_id=self.image.id, algo='sha512',
                                       actual='1', expected='2')
        agent = self.make(FakeDownloader(error=error))
        self.cache(agent, self.image.id, self.meta())
        (_, _, status, detail), = self.api.reports
        self.assertEqual('failed', status)
        self.assertEqual('hash_mismatch', detail['code'])
        self.assertIn('expected 2', detail['reason'])

    def test_cancel_abandons_a_request_in_its_start_delay(self):
        self.flags(group='agent', start_delay_window=60)
        agent = self.make()
        started = time.monotonic()
        agent.cache(None, self.image.id, self.meta())
        agent.cancel()
        self.assertTrue(agent.wait_idle(10))
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(0, self.downloader.calls)
        (_, _, status, detail), = self.api.reports
        self.assertEqual('failed', status)
        self.assertEqual('interrupted', detail['code'])

    def test_cancel_stops_a_download_in_progress(self):
        agent = self.make()
        seen = []

        class Downloader(FakeDownloader):
            def download(self, image, sources, fileobj, cancel=None,
                         ticket=None):
                seen.append(cancel)
                agent.cancel()
                raise exception.Interrupted(image_id=image.id,
                                            reason='the agent is stopping')

        agent.downloader = Downloader()
        self.cache(agent, self.image.id, self.meta())
        self.assertIs(agent.stopping, seen[0])
        (_, _, status, detail), = self.api.reports
        self.assertEqual('interrupted', detail['code'])

    def test_no_space_is_refused_before_download(self):
        self.store.space_error = exception.InsufficientDiskSpace(
            path='/x', image_id=self.image.id, needed=10, reserve=1, free=2)
        agent = self.make()
        self.cache(agent, self.image.id, self.meta())
        self.assertEqual(0, self.downloader.calls)
        self.assertEqual('no_space', self.api.reports[0][3]['code'])

    def test_malformed_meta_is_reported(self):
        agent = self.make()
        self.cache(agent, 'some-id', self.sign({'version': '1.0'}))
        (_, image_id, status, detail), = self.api.reports
        self.assertEqual(('some-id', 'failed', 'invalid_meta'),
                         (image_id, status, detail['code']))
        self.assertEqual(0, self.downloader.calls)

    def test_image_id_must_match_meta(self):
        agent = self.make()
        self.cache(agent, 'other-id', self.meta())
        self.assertEqual('invalid_meta', self.api.reports[0][3]['code'])

    def test_request_for_other_hosts_is_ignored(self):
        agent = self.make()
        self.cache(agent, self.image.id,
                   self.meta(targets={'hosts': ['cmp-9*'],
                                      'labels': ['az2']}))
        self.assertEqual([], self.api.reports)
        self.cache(agent, self.image.id,
                   self.meta(targets={'labels': ['az1']}))
        self.assertEqual('cached', self.api.reports[0][2])

    def test_stale_request_is_ignored(self):
        agent = self.make()
        newer = self.meta()
        older = self.sign(dict(newer, generation=newer['generation'] - 1))
        self.cache(agent, self.image.id, newer)
        self.cache(agent, self.image.id, older)
        self.assertEqual(1, len(self.api.reports))

    def test_requests_beyond_the_queue_are_busy_at_once(self):
        self.flags(group='agent', max_concurrent_downloads=2,
                   max_queued_requests=3)
        gate = threading.Event()
        self.addCleanup(gate.set)

        class Blocked(FakeDownloader):
            def download(self, image, sources, fileobj, cancel=None,
                         ticket=None):
                self.calls += 1
                gate.wait(10)
                return {'method': 'http', 'bytes_received': 4}

        agent = self.make(Blocked())
        images = [test_meta.make_image(id='img-%d' % n)
                  for n in range(7)]
        for image in images[:5]:  # 2 running, 3 waiting
            agent.cache(None, image.id, self.meta_of(image))
        for image in images[5:]:
            started = time.monotonic()
            agent.cache(None, image.id, self.meta_of(image))
            self.assertLess(time.monotonic() - started, 1)
        # Answered at once, while every other request still waits.
        self.assertEqual([('img-5', 'failed', 'busy'),
                          ('img-6', 'failed', 'busy')],
                         [(r[1], r[2], r[3]['code'])
                          for r in self.api.reports])
        self.assertIn('busy with 5 request(s)', self.api.reports[0][3][
            'reason'])
        self.assertEqual(2, len(self.api.downloading))
        # An image already present is still reported existing.
        self.store.files.add(images[6].id)
        agent.cache(None, images[6].id,
                    self.meta_of(images[6]))
        self.assertEqual('existing', self.api.reports[-1][2])
        # A request for an image in progress is ignored, not busy.
        agent.cache(None, images[0].id, self.meta_of(images[0]))
        self.assertEqual(3, len(self.api.reports))
        gate.set()
        self.assertTrue(agent.wait_idle(10))
        self.assertEqual(5, self.downloader.calls)
        self.assertEqual(5, [r[2] for r in self.api.reports].count(
            'cached'))

    def test_another_origin_takes_a_flooding_origin_s_place(self):
        self.flags(group='agent', max_concurrent_downloads=1,
                   max_queued_requests=2)
        gate = threading.Event()
        self.addCleanup(gate.set)
        agent = self.make(FakeDownloader(gate=gate))
        flood = [test_meta.make_image(id='flood-%d' % n) for n in range(4)]
        for image in flood:  # 1 running, 2 waiting, 1 busy
            agent.cache(None, image.id, self.meta_of(image))
        self.assertTrue(self.downloader.started.wait(10))
        other = test_meta.make_image(id='other')
        source = dict(SOURCES[0], url='http://other.example.org/x.zst')
        agent.cache(None, other.id, self.sign(meta_mod.build(
            other, [source], epoch=base.EPOCH)))
        # The flood's newest waiting request gave its place.
        busy = lambda: sorted(r[1] for r in self.api.reports  # noqa: E731
                              if r[3].get('code') == 'busy')
        deadline = time.monotonic() + 10
        while len(busy()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(['flood-2', 'flood-3'], busy())
        gate.set()
        self.assertTrue(agent.wait_idle(10))
        self.assertEqual(['flood-0', 'flood-1', 'other'], sorted(
            r[1] for r in self.api.reports if r[2] == 'cached'))

    def test_no_queue(self):
        self.flags(group='agent', max_concurrent_downloads=1,
                   max_queued_requests=0)
        gate = threading.Event()
        self.addCleanup(gate.set)
        agent = self.make(FakeDownloader(gate=gate))
        first, second = (test_meta.make_image(id=i)
                         for i in ('img-a', 'img-b'))
        agent.cache(None, first.id, self.meta_of(first))
        agent.cache(None, second.id, self.meta_of(second))
        self.assertEqual([('img-b', 'busy')],
                         [(r[1], r[3]['code']) for r in self.api.reports])
        gate.set()
        self.assertTrue(agent.wait_idle(10))

    def test_keep_alive_touches_wanted_images(self):
        agent = self.make()
        self.cache(agent, self.image.id, self.meta())
        self.store.touched = []
        agent.keep_alive()
        self.assertEqual([self.image.id], self.store.touched)
        self.assertEqual([self.image.id], self.store.expired_with)

    def test_heartbeat_carries_inventory_and_disk(self):
        agent = self.make()
        agent.heartbeat()
        (host, status), = self.api.heartbeats
        self.assertEqual('cmp-1', host)
        self.assertEqual(['az1'], status['labels'])
        self.assertEqual(50, status['disk']['free'])
        self.assertEqual('img', status['inventory'][0]['image_id'])
        self.assertTrue(status['version'])


class DesiredSetTest(base.TestCase):
    """An agent asks for the desired set (start-up, keep-alive)."""

    def setUp(self):
        super().setUp()
        self.flags(host='cmp-1')
        self.flags(group='agent', labels=['az1'])
        self.store = FakeStore()
        self.image = test_meta.make_image()

    def meta(self):
        return self.sign(meta_mod.build(self.image, SOURCES,
                                        epoch=base.EPOCH))

    def make(self, desired):
        self.api = FakeServiceAPI(desired)
        self.downloader = FakeDownloader()
        return manager.AgentManager(self.conf, self.api, store=self.store,
                                    downloader=self.downloader)

    def test_lacking_images_are_downloaded_and_reported(self):
        agent = self.make([self.meta()])
        self.assertEqual(1, agent.sync_desired())
        self.assertEqual([('cmp-1', ['az1'])], self.api.desired_calls)
        self.assertEqual(1, self.downloader.calls)
        self.assertEqual(['cached'], [r[2] for r in self.api.reports])

    def test_present_images_are_touched_without_a_report(self):
        agent = self.make([self.meta()])
        agent.sync_desired()
        agent.sync_desired()
        self.assertEqual(1, self.downloader.calls)
        self.assertEqual(['cached'], [r[2] for r in self.api.reports])
        self.assertEqual([self.image.id],
                         [i.id for i in agent.wanted.current()])

    def test_retried_until_the_service_answers(self):
        agent = self.make(RuntimeError('service down'))
        stopped = threading.Event()
        calls = []

        def answer_on_third_call(context, host, labels):
            calls.append(host)
            if len(calls) < 3:
                raise RuntimeError('service down')
            return []

        self.api.desired = answer_on_third_call
        self.assertTrue(agent.sync_desired_until_done(stopped, 0.01))
        self.assertEqual(3, len(calls))

    def test_pinned_service_version_is_not_retried(self):
        agent = self.make(exception.RPCVersionPinned(
            method='desired', peer='service', version='1.1', cap='1.0'))
        stopped = threading.Event()
        with fixtures.FakeLogger() as logger:
            self.assertFalse(agent.sync_desired_until_done(stopped, 10))
        self.assertEqual(1, len(self.api.desired_calls))
        self.assertIn('[upgrade_levels] service caps it at 1.0',
                      logger.output)
        self.assertFalse(stopped.is_set())

    def test_stopping_ends_the_retries(self):
        agent = self.make(RuntimeError('service down'))
        stopped = threading.Event()
        stopped.set()
        self.assertFalse(agent.sync_desired_until_done(stopped, 0.01))


class UntrustedRequestTest(AgentManagerTest):
    """Refused before any network or disk work, with a report code."""

    def setUp(self):
        super().setUp()
        self.other = self.useFixture(signing_fixture.SigningKeysFixture(
            self.tempdir + '/other', name='other'))

    def make(self, downloader=None):
        self.agent = super().make(downloader)
        return self.agent

    def assertRefused(self, code, image_id, meta, reported_id=None):
        agent = self.make()
        with self.assertLogs('precache.agent.manager', 'ERROR') as logs:
            agent.cache(None, image_id, meta)
        (_, got_id, status, detail), = self.api.reports
        self.assertEqual((reported_id or image_id, 'failed', code),
                         (got_id, status, detail['code']))
        self.assertIn(code, logs.output[0])
        self.assertEqual(0, self.downloader.calls)
        self.assertEqual([], self.api.downloading)
        self.assertEqual((set(), []), (self.store.files, self.store.touched))
        self.assertEqual([], agent.wanted.current())
        return detail, logs.output[0]

    def test_unsigned(self):
        unsigned = meta_mod.build(self.image, SOURCES, epoch=base.EPOCH)
        self.assertRefused('unsigned', self.image.id, unsigned)

    def test_signed_by_an_unknown_key(self):
        self.assertRefused('unknown_key', self.image.id,
                           self.other.sign(meta_mod.build(
                               self.image, SOURCES, epoch=base.EPOCH)))

    def test_changed_after_signing(self):
        meta = self.meta()
        meta['sources'] = [dict(SOURCES[0], url='http://evil/x.zst')]
        self.assertRefused('bad_signature', self.image.id, meta)

    def test_forged_huge_generation(self):
        meta = self.meta()
        meta['generation'] = 2 ** 62
        self.assertRefused('bad_signature', self.image.id, meta)
        # It did not block the service's next, genuine decision.
        self.api.reports = []
        self.cache(self.agent, self.image.id, self.meta())
        self.assertEqual('cached', self.api.reports[0][2])

    def test_hostile_image_id(self):
        hostile = 'x\x1b[2J\n' + 'y' * 400
        detail, line = self.assertRefused(
            'invalid_image_id', hostile, self.meta(),
            reported_id=image_mod.quote_id(hostile))
        for text in (line, detail['reason']):
            self.assertNotIn('\x1b', text)
            self.assertNotIn('\n', text)
            self.assertNotIn('y' * 100, text)

    def test_image_id_of_another_type(self):
        self.assertRefused('invalid_image_id', ['x'], self.meta(),
                           reported_id='<list>')

    def test_unsigned_desired_entries_are_refused(self):
        unsigned = meta_mod.build(self.image, SOURCES, epoch=base.EPOCH)
        forged = self.other.sign(unsigned)
        self.api.desired_metas = [unsigned, forged, 'junk']
        agent = self.make()
        agent.sync_desired()
        self.assertEqual(['unsigned', 'unknown_key', 'invalid_image_id'],
                         [r[3]['code'] for r in self.api.reports])
        self.assertEqual(0, self.downloader.calls)
        # The genuine answer is followed.
        self.api.reports = []
        self.api.desired_metas = [self.meta()]
        agent.sync_desired()
        self.assertEqual(['cached'], [r[2] for r in self.api.reports])

    def test_new_epoch_is_obeyed(self):
        agent = self.make()
        self.cache(agent, self.image.id, self.meta(generation=10 ** 15))
        self.store.files.clear()
        # The service's database was recreated: lower counters, new epoch.
        self.cache(agent, self.image.id,
                   self.meta(generation=5, epoch='ab' * 16))
        self.assertEqual(['cached', 'cached'],
                         [r[2] for r in self.api.reports])
        self.assertEqual(2, self.downloader.calls)
