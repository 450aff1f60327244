"""Delta artifacts end to end: the service builds, the agent assembles.

The service's DeltaPublisher writes the delta beside the full artifact
of a real HTTPServer (built-in web server on 127.0.0.1); the agent's
Downloader takes the meta's sources in order, the ``delta`` source
reading its base from a directory store.
"""

import hashlib
import os

import fixtures

from precache.agent import assembly
from precache.agent import download
from precache.agent.sources import bittorrent as bt_source
from precache.agent.sources import delta as delta_source
from precache.agent.stores import directory as directory_store
from precache.common import exception
from precache.objects import chunks
from precache.objects import delta as delta_format
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import states
from precache.service import delta
from precache.service.servers import base as servers_base
from precache.service.servers import bittorrent as bt_server
from precache.service.servers import http as http_server
from precache.service import views
from precache.tests import base
from precache.tests.fixtures import distributor
from precache.tests.fixtures import image_pairs
from precache.tests.unit.agent import test_download
from precache.tests.unit.service import test_pipeline


class FakeDB(object):
    """The two queries the publisher makes, on in-memory rows."""

    def __init__(self):
        self.images = []
        self.holders = {}

    def list_images(self):
        return self.images

    def image_hosts(self, image_id):
        return {host: {'status': states.CACHED}
                for host in self.holders.get(image_id, ())}


def _record(data, image_id, name='golden'):
    return image_mod.ImageRecord(
        id=image_id, name=name, disk_format='raw', size=len(data),
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest())


class DeltaTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch(
            'precache.common.plugin.load_plugin_class',
            test_download._setup_cfg_plugin_class))
        self.register_plugin_opts(http_server.HTTPServer)
        self.flags(group=http_server.GROUP,
                   document_root=os.path.join(self.tempdir, 'www'),
                   bind_host='127.0.0.1', bind_port=0)
        self.flags(group='delta', enabled=True, average_chunk_size=16384,
                   index_dir=os.path.join(self.tempdir, 'chunks'))
        self.store_dir = os.path.join(self.tempdir, 'store')
        os.mkdir(self.store_dir)
        self.flags(group='agent', store='directory', proxies=[],
                   direct_after_proxies=True, download_retries=0,
                   bandwidth_limit=0)
        self.server = http_server.HTTPServer(self.conf)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.register_plugin_opts(directory_store.DirectoryStore)
        self.flags(group='directory_store', path=self.store_dir)
        self.db = FakeDB()
        self.publisher = delta.DeltaPublisher(self.conf, self.db,
                                              self.server)
        self.v1, self.v2 = image_pairs.synthetic_pair(2 * 1024 * 1024,
                                                      changed_blocks=8)
        self.image1 = _record(self.v1, 'img-v1')
        self.image2 = _record(self.v2, 'img-v2')
        self.downloader = download.Downloader(self.conf)
        self.addCleanup(self.downloader.close)

    def stage(self, data, name):
        path = os.path.join(self.tempdir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def serve(self, image, data):
        path = self.stage(data, image.id + '.staged')
        sources = self.server.serve(image, path)
        return self.publisher.add_sources(image, path, sources)

    def serve_both(self, hosts=('cmp-1',)):
        """Serve v1, let ``hosts`` hold it, serve v2: v2's sources."""
        self.db.images = [{'id': 'img-v1', 'name': 'golden'},
                          {'id': 'img-v2', 'name': 'golden'}]
        self.assertNotIn('delta', [s['method'] for s in
                                   self.serve(self.image1, self.v1)])
        self.db.holders['img-v1'] = list(hosts)
        return self.serve(self.image2, self.v2)

    def hold_v1(self, data=None):
        with open(os.path.join(self.store_dir, 'img-v1'), 'wb') as f:
            f.write(self.v1 if data is None else data)

    def download(self, sources):
        target = os.path.join(self.tempdir, 'landing')
        with open(target, 'wb') as fileobj:
            result = self.downloader.download(self.image2, sources, fileobj)
        with open(target, 'rb') as f:
            self.assertEqual(self.v2, f.read())
        return result


class TestDeltaPublisher(DeltaTestCase):

    def test_delta_source_first_and_valid(self):
        sources = self.serve_both()
        self.assertEqual(['delta', 'http'], [s['method'] for s in sources])
        self.assertEqual({'id': 'img-v1'}, sources[0]['base'])
        self.assertLess(sources[0]['size'], sources[1]['size'] / 4)
        meta_mod.build(self.image2, sources, epoch=base.EPOCH)

    def test_delta_names_the_chunking_of_its_base(self):
        self.flags(group='delta', average_chunk_size=8192)
        sources = self.serve_both()
        self.assertEqual({'average': 8192}, sources[0]['chunking'])
        self.assertNotIn('chunking', sources[1])
        # The base's index was cut with it, whatever the option says now.
        self.flags(group='delta', average_chunk_size=32768)
        again = self.serve(self.image2, self.v2)
        self.assertEqual({'average': 8192}, again[0]['chunking'])
        self.assertEqual(8192, meta_mod.delta_average(meta_mod.build(
            self.image2, again, epoch=base.EPOCH)['sources']))

    def test_index_kept_out_of_document_root(self):
        self.serve_both()
        index_dir = os.path.join(self.tempdir, 'chunks', 'img-v1')
        (name,) = os.listdir(index_dir)
        self.assertEqual(self.image1.os_hash_value[:16] + '.idx', name)

    def test_no_delta_without_holders(self):
        self.assertEqual(['http'], [s['method'] for s in
                                    self.serve_both(hosts=())])

    def test_no_delta_across_names(self):
        self.image2.name = 'other'
        self.assertEqual(['http'], [s['method'] for s in self.serve_both()])

    def test_no_delta_when_not_smaller(self):
        self.v2 = image_pairs.synthetic_image(2 * 1024 * 1024, seed=9)
        self.image2 = _record(self.v2, 'img-v2')
        self.assertEqual(['http'], [s['method'] for s in self.serve_both()])

    def test_second_serve_reuses_the_delta(self):
        first = self.serve_both()
        path = os.path.join(self.tempdir, 'www', 'img-v2')
        before = {n: os.stat(os.path.join(path, n)).st_mtime_ns
                  for n in os.listdir(path)}
        self.assertEqual(first, self.serve(self.image2, self.v2))
        self.assertEqual(before, {
            n: os.stat(os.path.join(path, n)).st_mtime_ns
            for n in os.listdir(path)})

    def test_needs_a_server_carrying_extra_artifacts(self):
        self.flags(group='service', server='glance')
        exc = self.assertRaises(exception.ConfigurationError,
                                delta.DeltaPublisher, self.conf, self.db,
                                test_pipeline.FakeServer())
        self.assertIn('not glance', str(exc))


class TestDeltaDownload(DeltaTestCase):

    def test_assembled_from_the_delta(self):
        sources = self.serve_both()
        self.hold_v1()
        result = self.download(sources)
        self.assertEqual('delta', result['method'])
        self.assertEqual(sources[0]['size'], result['bytes_received'])
        self.assertIn('base img-v1', result['locator'])

    def test_host_without_base_takes_the_full_artifact(self):
        sources = self.serve_both()
        result = self.download(sources)
        self.assertEqual('http', result['method'])

    def test_corrupt_base_falls_back_to_the_full_artifact(self):
        sources = self.serve_both()
        damaged = bytearray(self.v1)
        for offset in range(0, len(damaged), 64 * 1024):
            damaged[offset] ^= 0xff
        self.hold_v1(bytes(damaged))
        with fixtures.FakeLogger() as logger:
            result = self.download(sources)
        self.assertEqual('http', result['method'])
        self.assertIn('differ from the base the delta was made from',
                      logger.output)

    def test_truncated_base_falls_back_to_the_full_artifact(self):
        sources = self.serve_both()
        self.hold_v1(self.v1[:len(self.v1) // 2])
        result = self.download(sources)
        self.assertEqual('http', result['method'])

    def test_delta_alone_fails_cleanly_without_base(self):
        sources = self.serve_both()
        target = os.path.join(self.tempdir, 'landing')
        with open(target, 'wb') as fileobj:
            exc = self.assertRaises(exception.AllSourcesFailed,
                                    self.downloader.download, self.image2,
                                    sources[:1], fileobj)
        self.assertIn('does not hold base image img-v1', str(exc))
        self.assertEqual(0, os.path.getsize(target))


class TestDeltaOverBitTorrent(DeltaTestCase):
    """The bittorrent server seeds the delta; the source swarms it."""

    def setUp(self):
        super().setUp()
        for cls in (bt_server.BitTorrentServer, bt_source.BitTorrentSource):
            self.register_plugin_opts(cls)
        self.flags(group=bt_server.GROUP, listen_host='127.0.0.1',
                   listen_port=0, piece_size_kb=64, tracker=False,
                   tracker_port=0)
        self.flags(group=bt_source.GROUP,
                   download_dir=os.path.join(self.tempdir, 'torrents'),
                   listen_host='127.0.0.1', listen_port=0, seed_time=60,
                   stall_timeout=5, web_seed_delay=-1)
        self.server.stop()
        self.server = bt_server.BitTorrentServer(self.conf)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.publisher = delta.DeltaPublisher(self.conf, self.db,
                                              self.server)

    def test_delta_torrent_then_delta_http_then_full(self):
        sources = self.serve_both()
        self.assertEqual(
            [('delta', 'bittorrent'), ('delta', 'http'),
             ('bittorrent', None), ('http', None)],
            [(s['method'], s.get('transport')) for s in sources])
        torrent, web = sources[:2]
        # A torrent of its own, the delta's URL as its web seed and url.
        self.assertNotEqual(torrent['info_hash'], sources[2]['info_hash'])
        self.assertEqual(web['url'], torrent['url'])
        self.assertIn('.delta-', web['url'])
        for key in ('size', 'hash_value', 'base'):
            self.assertEqual(web[key], torrent[key])
        meta_mod.validate(meta_mod.build(self.image2, sources,
                                         epoch=base.EPOCH))
        name = web['url'].rsplit('/', 1)[1]
        self.assertIsNotNone(self.server.seeder.handle('img-v2', name))

    def test_assembled_from_the_swarm(self):
        sources = self.serve_both()
        self.hold_v1()
        result = self.download(sources)
        self.assertEqual('delta', result['method'])
        self.assertEqual(sources[0]['size'], result['bytes_received'])
        self.assertIn('bittorrent info-hash %s (base img-v1)'
                      % sources[0]['info_hash'], result['locator'])

    def test_without_base_no_byte_travels_and_the_full_swarm_serves(self):
        sources = self.serve_both()
        result = self.download(sources)
        self.assertEqual('bittorrent', result['method'])

    def test_retire_forgets_every_torrent_of_the_image(self):
        sources = self.serve_both()
        name = sources[1]['url'].rsplit('/', 1)[1]
        self.server.retire('img-v2')
        self.assertIsNone(self.server.seeder.handle('img-v2'))
        self.assertIsNone(self.server.seeder.handle('img-v2', name))
        self.assertFalse(os.path.exists(
            os.path.join(self.tempdir, 'www', 'img-v2')))

    def test_a_new_version_stops_seeding_the_old_deltas(self):
        sources = self.serve_both()
        name = sources[1]['url'].rsplit('/', 1)[1]
        v3 = image_pairs.synthetic_image(2 * 1024 * 1024, seed=5)
        self.server.serve(_record(v3, 'img-v2'), self.stage(v3, 'v3'))
        self.assertIsNotNone(self.server.seeder.handle('img-v2'))
        self.assertIsNone(self.server.seeder.handle('img-v2', name))


class TestExtraArtifacts(DeltaTestCase):

    def test_extras_of_the_version_stay_others_go(self):
        self.serve_both()
        directory = os.path.join(self.tempdir, 'www', 'img-v2')
        names = sorted(os.listdir(directory))
        self.assertEqual(4, len(names), names)  # two artifacts, two records
        self.server.serve(self.image2, self.stage(self.v2, 'again'))
        self.assertEqual(names, sorted(os.listdir(directory)))
        v3 = image_pairs.synthetic_image(2 * 1024 * 1024, seed=5)
        self.server.serve(_record(v3, 'img-v2'), self.stage(v3, 'v3'))
        self.assertEqual(2, len(os.listdir(directory)))

    def test_invalid_names_are_refused(self):
        prefix = self.image2.os_hash_value[:16]
        for name in ('', '.hidden', 'a/b', 'other.delta-x.zst',
                     prefix + '.img.zst'):
            self.assertRaises(exception.ServeFailed,
                              self.server.extra_artifact_path, self.image2,
                              name)

    def test_a_missing_extra_artifact_is_not_served(self):
        path = self.server.extra_artifact_path(
            self.image2, self.image2.os_hash_value[:16] + '.delta-x.zst')
        exc = self.assertRaises(
            exception.ServeFailed, self.server.serve_extra, self.image2,
            servers_base.ExtraArtifact(os.path.basename(path), path, 'zstd',
                                       1, 'sha256', 'ab'))
        self.assertIn('is missing', str(exc))

    def test_base_class_carries_none(self):
        class Minimal(servers_base.ImageServer):
            def serve(self, image, path):
                return []

        server = Minimal(self.conf)
        self.assertFalse(server.carries_extra_artifacts)
        self.assertRaises(NotImplementedError, server.extra_artifact_path,
                          self.image2, 'x')

    def test_sources_without_url_borrow_the_first(self):
        made = delta.delta_sources(
            [{'method': 'bittorrent', 'size': 1},
             {'method': 'http', 'url': 'http://o/d', 'size': 1}], 'b')
        self.assertEqual(['http://o/d'] * 2, [s['url'] for s in made])
        self.assertEqual(['bittorrent', 'http'],
                         [s['transport'] for s in made])
        self.assertEqual([], delta.delta_sources(
            [{'method': 'bittorrent', 'size': 1}], 'b'))


class TestDeltaSourceTransport(DeltaTestCase):

    def test_meta_1_3_delta_travels_over_http(self):
        sources = self.serve_both()
        legacy = dict(sources[0])
        del legacy['transport']
        self.hold_v1()
        result = self.download([legacy])
        self.assertEqual('delta', result['method'])
        self.assertIn('http http://', result['locator'])

    def test_unknown_or_recursive_transport_fails_the_source(self):
        sources = self.serve_both()
        self.hold_v1()
        for transport in ('carrier-pigeon', 'delta'):
            odd = dict(sources[0], transport=transport)
            result = self.download([odd, sources[1]])
            self.assertEqual('http', result['method'])

    def test_transport_is_the_downloaders_own_plugin(self):
        plugin = self.downloader._plugin('delta')
        self.assertIs(self.downloader._plugin('http'),
                      plugin.transport(self.image2, {
                          'method': 'delta', 'transport': 'http',
                          'base': {'id': 'b'}})[0])

    def test_alone_it_loads_and_closes_its_transport(self):
        plugin = delta_source.DeltaSource(self.conf)
        transport, carried = plugin.transport(self.image2, {
            'method': 'delta', 'url': 'http://o/d', 'base': {'id': 'b'}})
        self.assertEqual({'method': 'http', 'url': 'http://o/d'}, carried)
        plugin.close()


class TestDeltaFormat(base.TestCase):

    def test_chunk_index_cut_like_the_agent(self):
        v1, _v2 = image_pairs.synthetic_pair(512 * 1024)
        path = os.path.join(self.tempdir, 'v1')
        with open(path, 'wb') as f:
            f.write(v1)
        index = chunks.Index.of_file(path, 16384)
        self.assertEqual(len(v1), index.size)


class FakeDeltas(object):
    """Stands for the DeltaPublisher: puts a delta source first."""

    def __init__(self):
        self.calls = []

    def add_sources(self, image, path, sources):
        self.calls.append((image.id, path))
        return [{'method': 'delta', 'url': 'http://origin/d',
                 'compression': 'zstd', 'size': 1,
                 'base': {'id': 'older'}}] + sources


class TestPipelineWiring(base.TestCase):

    def make(self, **plugins):
        self.agent_api = test_pipeline.FakeAgentAPI()
        return distributor.fanout_pipeline(
            self.conf, self.tempdir, self.agent_api,
            listers=[test_pipeline.FakeLister([test_pipeline.record('a')])],
            fetcher=test_pipeline.FakeFetcher(),
            server=test_pipeline.FakeServer(), **plugins)

    def test_off_by_default(self):
        self.assertIsNone(self.make().deltas)

    def test_delta_sources_reach_the_meta(self):
        deltas = FakeDeltas()
        pipe = self.make(deltas=deltas)
        outcome, = pipe.run(context=None)
        self.assertEqual([('a', '/staging/a')], deltas.calls)
        _image_id, sent, _host = self.agent_api.casts[0]
        meta_mod.validate(sent)
        self.assertEqual(['delta', 'http'],
                         [s['method'] for s in sent['sources']])

    def test_enabled_needs_a_server_carrying_extra_artifacts(self):
        self.flags(group='delta', enabled=True)
        self.assertRaises(exception.ConfigurationError, self.make)


class TestDeltaBaseView(base.TestCase):

    def test_delta_base_of_the_stored_meta(self):
        meta = {'sources': FakeDeltas().add_sources(_record(b'x', 'a'),
                                                    '/p', [])}
        self.assertEqual('older', views.delta_base(meta))
        self.assertIsNone(views.delta_base({'sources': [{'method':
                                                         'http'}]}))
        self.assertIsNone(views.delta_base(None))


class TestAssemblerErrors(base.TestCase):

    def test_unreadable_base_is_unusable_not_fatal(self):
        path = os.path.join(self.tempdir, 'base')
        with open(path, 'wb') as f:
            f.write(b'x' * 100)
        sink = []

        class Sink(object):
            def write(self, data):
                sink.append(data)

        assembler = assembly.Assembler(_record(b'new', 'new'), 'base', path,
                                       Sink())
        broken = self.useFixture(fixtures.MockPatchObject(
            assembler._base, 'read', side_effect=OSError(5, 'EIO'))).mock
        record = (delta_format.MAGIC + delta_format.COPY +
                  (0).to_bytes(8, 'big') + (10).to_bytes(4, 'big') +
                  chunks.digest(b'x' * 10))
        exc = self.assertRaises(exception.BaseUnusable, assembler.write,
                                record)
        self.assertTrue(broken.called)
        self.assertIn('EIO', str(exc))
        self.assertEqual([], sink)


class TestDeltaLocator(base.TestCase):

    def test_a_tempurl_signature_stays_out_of_messages(self):
        self.useFixture(fixtures.MockPatch(
            'precache.common.plugin.load_plugin_class',
            test_download._setup_cfg_plugin_class))
        plugin = delta_source.DeltaSource(self.conf)
        self.addCleanup(plugin.close)
        locator = plugin.locator({
            'method': 'delta', 'transport': 'swift', 'base': {'id': 'b'},
            'url': 'http://swift/v1/AUTH_a/c/o?temp_url_sig=secret'})
        self.assertEqual('swift http://swift/v1/AUTH_a/c/o (base b)',
                         locator)
