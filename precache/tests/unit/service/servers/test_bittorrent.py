"""Tests of the bittorrent server and source on 127.0.0.1.

A real :class:`BitTorrentServer` (built-in web server and seeding
session) publishes an image; a real :class:`BitTorrentSource` with a
session of its own downloads it from that seed.
"""

import hashlib
import os
import re
import socket
import time

import fixtures
import libtorrent as lt

from precache.agent import download
from precache.agent.sources import bittorrent as bt_source
from precache.common import exception
from precache.objects import meta
from precache.service.servers import bittorrent as bt_server
from precache.service.servers import http as http_server
from precache.tests import base
from precache.tests.unit.service.servers import test_http as test_http_server
from precache.torrent import metainfo
from precache.torrent import registry
from precache.torrent import swarm

MiB = 1024 * 1024


class BitTorrentTestCase(base.TestCase):
    """A seeding server with one served image, and a source."""

    def setUp(self):
        super().setUp()
        for cls in (http_server.HTTPServer, bt_server.BitTorrentServer,
                    bt_source.BitTorrentSource):
            self.register_plugin_opts(cls)
        self.flags(group=http_server.GROUP, compression='none',
                   document_root=os.path.join(self.tempdir, 'www'),
                   bind_host='127.0.0.1', bind_port=0)
        # The tracker is off unless a test is about it: agents find the
        # seed only through the source's peers.
        self.flags(group=bt_server.GROUP, listen_host='127.0.0.1',
                   listen_port=0, piece_size_kb=1024, tracker=False,
                   tracker_port=0)
        self.download_dir = os.path.join(self.tempdir, 'torrents')
        self.flags(group=bt_source.GROUP, download_dir=self.download_dir,
                   listen_host='127.0.0.1', listen_port=0, seed_time=60,
                   stall_timeout=5, web_seed_delay=-1)
        # Incompressible and several pieces long.
        self.data = os.urandom(5 * MiB + 4321)
        self.image = test_http_server.make_record(self.data)
        self.path = os.path.join(self.tempdir, 'image')
        with open(self.path, 'wb') as f:
            f.write(self.data)
        self.server = bt_server.BitTorrentServer(self.conf)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.sources = self.server.serve(self.image, self.path)

    def make_source(self):
        source = bt_source.BitTorrentSource(self.conf)
        self.addCleanup(source.close)
        return source

    def receive(self, source_plugin, source):
        return b''.join(source_plugin.stream(self.image, source))


class ServerTest(BitTorrentTestCase):

    def test_sources_are_bittorrent_then_http(self):
        torrent_source, http_source = self.sources
        self.assertEqual('http', http_source['method'])
        self.assertEqual('bittorrent', torrent_source['method'])
        for key in ('compression', 'size', 'hash_algo', 'hash_value'):
            self.assertEqual(http_source[key], torrent_source[key])
        self.assertEqual(hashlib.sha256(self.data).hexdigest(),
                         torrent_source['hash_value'])
        self.assertEqual(['127.0.0.1:%d' % self.server.seeder.port],
                         torrent_source['peers'])
        # Valid on the wire.
        meta.build(self.image, self.sources, epoch=base.EPOCH)

    def test_torrent_describes_the_artifact_with_its_web_seed(self):
        torrent_source, http_source = self.sources
        params = metainfo.load(torrent_source['torrent'])
        self.assertEqual(torrent_source['info_hash'],
                         str(params.ti.info_hashes().v1))
        self.assertFalse(params.ti.info_hashes().has_v2())
        self.assertEqual(MiB, params.ti.piece_length())
        self.assertEqual(6, params.ti.num_pieces())
        self.assertEqual(len(self.data), params.ti.total_size())
        self.assertEqual([http_source['url']], params.url_seeds)
        artifact = self.server.http.artifact_path(self.image)
        self.assertEqual(os.path.basename(artifact), params.ti.name())

    def test_seeds_the_artifact_in_seed_mode(self):
        handle = self.server.seeder.handle(self.image.id)
        status = handle.status()
        self.assertTrue(status.is_seeding)
        self.assertTrue(status.seed_mode)  # not re-hashed

    def test_retire_stops_seeding_and_removes_the_artifact(self):
        artifact = self.server.http.artifact_path(self.image)
        self.server.retire(self.image.id)
        self.assertIsNone(self.server.seeder.handle(self.image.id))
        self.assertFalse(os.path.exists(artifact))
        self.server.retire(self.image.id)  # idempotent
        # Served again: seeded again.
        self.server.serve(self.image, self.path)
        self.assertIsNotNone(self.server.seeder.handle(self.image.id))

    def test_seed_is_not_left_to_libtorrent_queue(self):
        # An auto-managed torrent may be paused by libtorrent's queue;
        # the service's seed must run until precache stops it.
        flags = self.server.seeder.handle(self.image.id).flags()
        self.assertFalse(flags & lt.torrent_flags.auto_managed)
        self.assertFalse(flags & lt.torrent_flags.paused)

    def test_serving_again_reuses_the_torrent(self):
        again = self.server.serve(self.image, self.path)
        self.assertEqual(self.sources, again)

    def test_changed_image_replaces_the_torrent(self):
        old_handle = self.server.seeder.handle(self.image.id)
        data = os.urandom(2 * MiB)
        image = test_http_server.make_record(data)
        with open(self.path, 'wb') as f:
            f.write(data)
        torrent_source, _ = self.server.serve(image, self.path)
        self.assertNotEqual(self.sources[0]['info_hash'],
                            torrent_source['info_hash'])
        self.assertNotEqual(old_handle,
                            self.server.seeder.handle(self.image.id))
        # Removal is asynchronous in libtorrent.
        deadline = time.monotonic() + 10
        while old_handle.is_valid():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.assertIsNone(self.server.seeder.session.find(
            self.sources[0]['info_hash']))

    def test_piece_size_must_be_a_power_of_two(self):
        self.flags(group=bt_server.GROUP, piece_size_kb=3000)
        self.assertRaises(exception.ConfigurationError,
                          bt_server.BitTorrentServer, self.conf)

    def test_tracker_port_taken_is_a_configuration_error(self):
        with socket.socket() as taken:
            taken.bind(('127.0.0.1', 0))
            taken.listen()
            port = taken.getsockname()[1]
            self.flags(group=bt_server.GROUP, tracker=True,
                       tracker_port=port)
            server = bt_server.BitTorrentServer(self.conf)
            exc = self.assertRaises(exception.ConfigurationError,
                                    server.start)
        self.assertIn('the built-in tracker cannot listen on 127.0.0.1 '
                      'port %d' % port, str(exc))
        self.assertIn('tracker_port', str(exc))
        # What had started is stopped again.
        self.assertIsNone(server.tracker)
        self.assertIsNone(server.seeder)

    def tracker_address(self, **options):
        self.flags(group=bt_server.GROUP, tracker=True, **options)
        server = bt_server.BitTorrentServer(self.conf)
        server.start()
        self.addCleanup(server.stop)
        return server.tracker.server_address[0]

    def test_tracker_binds_listen_host_not_every_address(self):
        self.assertEqual('127.0.0.1', self.tracker_address())

    def test_tracker_of_a_wildcard_listen_host_binds_the_peer_address(self):
        self.assertEqual('127.0.0.1', self.tracker_address(
            listen_host='0.0.0.0', peer_host='127.0.0.1'))

    def test_tracker_host_wins(self):
        self.assertEqual('::1', self.tracker_address(tracker_host='::1'))

    def test_unresolvable_peer_host_needs_tracker_host(self):
        self.flags(group=bt_server.GROUP, tracker=True, listen_host='0.0.0.0',
                   peer_host='does-not-resolve.invalid')
        server = bt_server.BitTorrentServer(self.conf)
        exc = self.assertRaises(exception.ConfigurationError, server.start)
        self.assertIn('set [bittorrent_server] tracker_host', str(exc))

    def test_serve_before_start_fails(self):
        server = bt_server.BitTorrentServer(self.conf)
        self.assertRaises(exception.ServeFailed, server.serve, self.image,
                          self.path)


class SourceTest(BitTorrentTestCase):

    def test_downloads_from_the_seed_in_order(self):
        source_plugin = self.make_source()
        chunks = list(source_plugin.stream(self.image, self.sources[0]))
        self.assertEqual(self.data, b''.join(chunks))
        # Piece by piece: 5 whole pieces and the short last one.
        self.assertEqual([MiB] * 5 + [4321], [len(c) for c in chunks])

    def test_keeps_seeding_then_removes_the_data(self):
        source_plugin = self.make_source()
        key = self.sources[0]['info_hash']
        self.receive(source_plugin, self.sources[0])
        # Seeding: the torrent and its file stay.
        seeding_pool = source_plugin._seeding
        self.assertEqual([key], seeding_pool.keys())
        self.assertTrue(os.listdir(os.path.join(self.download_dir, key)))
        source_plugin.close()
        self.assertEqual([], os.listdir(self.download_dir))

    def test_seeding_ends_after_seed_time(self):
        self.flags(group=bt_source.GROUP, seed_time=0)
        source_plugin = self.make_source()
        self.receive(source_plugin, self.sources[0])
        self.assertEqual([], source_plugin._seeding.keys())
        self.assertEqual([], os.listdir(self.download_dir))

    def test_second_download_reads_the_seeding_copy(self):
        source_plugin = self.make_source()
        self.receive(source_plugin, self.sources[0])
        self.server.seeder.stop()  # no seed any more
        self.server.seeder = None
        self.assertEqual(self.data,
                         self.receive(source_plugin, self.sources[0]))

    def test_another_agent_downloads_from_the_first(self):
        first = self.make_source()
        self.receive(first, self.sources[0])
        self.server.seeder.stop()
        self.server.seeder = None
        # The second agent only knows the first one's address.
        second_conf_port = first._session.port
        second = self.make_source()
        source = dict(self.sources[0],
                      peers=['127.0.0.1:%d' % second_conf_port])
        self.assertEqual(self.data, self.receive(second, source))

    def serve_with_tracker(self):
        """Serve the image again from a server running the tracker."""
        self.server.stop()
        self.flags(group=bt_server.GROUP, tracker=True)
        self.server = bt_server.BitTorrentServer(self.conf)
        self.server.start()
        self.addCleanup(self.server.stop)
        torrent_source, _ = self.server.serve(self.image, self.path)
        return torrent_source

    def seed_uploaded(self):
        handle = self.server.seeder.handle(self.image.id)
        return handle.status().total_payload_upload

    def wait_announced(self, key, port):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            peers = self.server.tracker.swarms.peers(key).values()
            if port in {p.port for p in peers}:
                return
            time.sleep(0.1)
        self.fail('port %d never announced to the tracker' % port)

    def test_agents_find_each_other_through_the_tracker(self):
        torrent_source = self.serve_with_tracker()
        announce = 'http://127.0.0.1:%d/announce' % self.server.tracker.port
        urls = [str(t) for t in
                metainfo.load(torrent_source["torrent"]).trackers]
        self.assertEqual(1, len(urls))
        # The torrent's passkey, the same in the first-copy URL.
        self.assertRegex(urls[0], '^%s[?]passkey=[-_A-Za-z0-9]{32}$'
                         % re.escape(announce))
        self.assertEqual(urls[0].split('?')[1],
                         torrent_source['inject_url'].split('?')[1])
        first = self.make_source()
        self.assertEqual(self.data, self.receive(first, torrent_source))
        key = torrent_source['info_hash']
        self.wait_announced(key, first._session.port)
        # The seed goes; the second agent is given no peer at all and
        # learns of the first, still seeding, from the tracker.
        self.server.seeder.stop()
        self.server.seeder = None
        second = self.make_source()
        self.assertEqual(self.data, self.receive(
            second, dict(torrent_source, peers=[])))

    def test_first_copies_come_from_the_origin_not_the_seed(self):
        torrent_source = self.serve_with_tracker()
        self.assertTrue(torrent_source['inject_url'].startswith(
            'http://127.0.0.1:%d/inject?passkey=' % self.server.tracker.port))
        first, second = self.make_source(), self.make_source()
        self.assertEqual(self.data, self.receive(first, torrent_source))
        # Every piece was handed out and confirmed: the second agent
        # takes all from the first.
        self.assertEqual(self.data, self.receive(second, torrent_source))
        self.assertEqual(0, self.seed_uploaded())
        self.assertEqual('done', self.server.tracker.swarms.take_first_copy(
            bytes.fromhex(torrent_source['info_hash'])))

    def test_a_first_copy_whose_agent_vanished_is_handed_out_again(self):
        self.useFixture(fixtures.MockPatchObject(registry, 'INJECT_LEASE',
                                                 1.0))
        torrent_source = self.serve_with_tracker()
        key = bytes.fromhex(torrent_source['info_hash'])
        # An agent took piece 0 and died without confirming it.
        self.assertEqual(0, self.server.tracker.swarms.take_first_copy(key))
        source_plugin = self.make_source()
        self.assertEqual(self.data, self.receive(source_plugin,
                                                 torrent_source))
        # The live agent fetched it after the lease, not from the seed.
        self.assertEqual(0, self.seed_uploaded())
        self.assertEqual('done',
                         self.server.tracker.swarms.take_first_copy(key))

    def test_failing_first_copies_fall_back_on_the_seed(self):
        torrent_source = self.serve_with_tracker()
        dead = 'http://127.0.0.1:%d/inject' % self.refusing_port()
        source_plugin = self.make_source()
        self.assertEqual(self.data, self.receive(
            source_plugin, dict(torrent_source, inject_url=dead)))
        self.assertEqual(len(self.data), self.seed_uploaded())

    def other_agents_took_every_first_copy(self, torrent_source):
        key = bytes.fromhex(torrent_source['info_hash'])
        taken = []
        while True:
            answer = self.server.tracker.swarms.take_first_copy(key, taken)
            if answer == 'done':
                return
            taken = [answer]

    def test_idle_after_first_copies_connects_the_seed_after_the_delay(self):
        # The other agents (gone) took every first copy: this one gets
        # "done" at once and, with no peer sending, waits
        # seed_fallback_delay before it asks the seed.
        self.flags(group=bt_source.GROUP, seed_fallback_delay=1,
                   stall_timeout=4)
        torrent_source = self.serve_with_tracker()
        self.other_agents_took_every_first_copy(torrent_source)
        started = time.monotonic()
        self.assertEqual(self.data, self.receive(self.make_source(),
                                                 torrent_source))
        self.assertGreaterEqual(time.monotonic() - started, 1)
        self.assertEqual(len(self.data), self.seed_uploaded())

    def test_no_seed_before_the_delay(self):
        # Longer than the default delay (5 s) and shorter than the one set.
        self.flags(group=bt_source.GROUP, seed_fallback_delay=30,
                   stall_timeout=7)
        torrent_source = self.serve_with_tracker()
        self.other_agents_took_every_first_copy(torrent_source)
        error = self.assertRaises(
            exception.SourceFailed, self.receive, self.make_source(),
            torrent_source)
        self.assertIn('no progress', str(error))
        self.assertEqual(0, self.seed_uploaded())

    def test_agents_without_first_copies_use_the_seed(self):
        torrent_source = self.serve_with_tracker()
        self.flags(group=bt_source.GROUP, first_copies=False)
        source_plugin = self.make_source()
        self.assertEqual(self.data, self.receive(source_plugin,
                                                 torrent_source))
        self.assertEqual(len(self.data), self.seed_uploaded())

    def test_web_seed_when_no_peer_delivers(self):
        self.flags(group=bt_source.GROUP, web_seed_delay=1,
                   stall_timeout=15)
        source_plugin = self.make_source()
        source = dict(self.sources[0],
                      peers=['127.0.0.1:%d' % self.refusing_port()])
        self.assertEqual(self.data, self.receive(source_plugin, source))

    def test_stall_fails_with_the_reason(self):
        self.flags(group=bt_source.GROUP, stall_timeout=2)
        source_plugin = self.make_source()
        dead = '127.0.0.1:%d' % self.refusing_port()
        source = dict(self.sources[0], peers=[dead])
        exc = self.assertRaises(exception.SourceFailed, self.receive,
                                source_plugin, source)
        self.assertIn('no progress for 2 s', str(exc))
        self.assertIn('0 of 6 pieces, 0 peer(s) connected', str(exc))
        self.assertIn(dead, str(exc))
        self.assertEqual([], os.listdir(self.download_dir))

    def test_invalid_torrent_fails(self):
        source_plugin = self.make_source()
        source = dict(self.sources[0], torrent='bm90IGEgdG9ycmVudA==')
        exc = self.assertRaises(exception.SourceFailed, self.receive,
                                source_plugin, source)
        self.assertIn('the torrent cannot be read', str(exc))

    def test_info_hash_mismatch_fails(self):
        source_plugin = self.make_source()
        source = dict(self.sources[0], info_hash='0' * 40)
        exc = self.assertRaises(exception.SourceFailed, self.receive,
                                source_plugin, source)
        self.assertIn("the torrent's info-hash is %s"
                      % self.sources[0]['info_hash'], str(exc))

    def test_size_mismatch_fails(self):
        source_plugin = self.make_source()
        source = dict(self.sources[0], size=1)
        exc = self.assertRaises(exception.SourceFailed, self.receive,
                                source_plugin, source)
        self.assertIn('describes %d bytes' % len(self.data), str(exc))

    def test_corrupt_web_seed_fails_on_hash_checks(self):
        # The origin's file changed behind the torrent's back: the web
        # seed (the only source here) sends bytes that fail the checks.
        self.flags(group=bt_source.GROUP, stall_timeout=20,
                   web_seed_delay=0)
        self.useFixture(fixtures.MockPatchObject(swarm, 'MAX_HASH_FAILURES',
                                                 1))
        artifact = self.server.http.artifact_path(self.image)
        with open(artifact, 'r+b') as f:
            f.write(os.urandom(len(self.data)))
        source_plugin = self.make_source()
        source = dict(self.sources[0], peers=[])
        exc = self.assertRaises(exception.SourceFailed, self.receive,
                                source_plugin, source)
        self.assertIn('1 pieces failed their hash check', str(exc))
        self.assertEqual([], os.listdir(self.download_dir))


class DownloaderFallbackTest(BitTorrentTestCase):

    def test_stalled_swarm_falls_back_to_http(self):
        self.flags(group=bt_source.GROUP, stall_timeout=2)
        downloader = download.Downloader(self.conf)
        self.addCleanup(downloader.close)
        torrent_source, http_source = self.sources
        torrent_source = dict(torrent_source,
                              peers=['127.0.0.1:%d' % self.refusing_port()])
        target = os.path.join(self.tempdir, 'landed')
        with open(target, 'w+b') as f:
            result = downloader.download(self.image,
                                         [torrent_source, http_source], f)
        self.assertEqual('http', result['method'])
        with open(target, 'rb') as f:
            self.assertEqual(self.data, f.read())

    def test_swarm_download_through_the_downloader(self):
        downloader = download.Downloader(self.conf)
        self.addCleanup(downloader.close)
        target = os.path.join(self.tempdir, 'landed')
        with open(target, 'w+b') as f:
            result = downloader.download(self.image, self.sources, f)
        self.assertEqual('bittorrent', result['method'])
        self.assertEqual(len(self.data), result['bytes_received'])
        with open(target, 'rb') as f:
            self.assertEqual(self.data, f.read())
