"""Tests of torrent making and reading (real libtorrent)."""

import base64
import hashlib
import os

import libtorrent as lt

from precache.common import exception
from precache.tests import base
from precache.torrent import metainfo

MiB = 1024 * 1024


class MakeTorrentTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.tempdir, 'abc.img.zst')
        self.data = os.urandom(5 * MiB + 12345)
        with open(self.path, 'wb') as f:
            f.write(self.data)

    def test_v1_torrent_with_piece_size_web_seed_and_tracker(self):
        torrent = metainfo.make_torrent(
            self.path, 2 * MiB, web_seeds=['http://origin:8780/i/abc.img.zst'],
            trackers=['http://tracker:6969/announce'])
        decoded = lt.bdecode(torrent)
        info = decoded[b'info']
        self.assertEqual(2 * MiB, info[b'piece length'])
        self.assertEqual(len(self.data), info[b'length'])
        self.assertEqual(b'abc.img.zst', info[b'name'])
        self.assertNotIn(b'meta version', info)  # v1 only, no v2 tree
        self.assertNotIn(b'piece layers', decoded)
        # BEP 19: one URL may be a string instead of a list.
        self.assertEqual(b'http://origin:8780/i/abc.img.zst',
                         decoded[b'url-list'])
        self.assertEqual(b'http://tracker:6969/announce',
                         decoded[b'announce'])
        # The piece hashes are the SHA-1 of the file's 2 MiB slices.
        expected = b''.join(
            hashlib.sha1(self.data[i:i + 2 * MiB]).digest()
            for i in range(0, len(self.data), 2 * MiB))
        self.assertEqual(expected, info[b'pieces'])

    def test_load_round_trips(self):
        torrent = metainfo.make_torrent(self.path, MiB,
                                        web_seeds=['http://o/x'])
        params = metainfo.load(metainfo.encode(torrent))
        self.assertEqual(6, params.ti.num_pieces())
        self.assertEqual(['http://o/x'], params.url_seeds)
        self.assertEqual(hashlib.sha1(lt.bencode(
            lt.bdecode(torrent)[b'info'])).hexdigest(),
            str(params.ti.info_hashes().v1))

    def test_load_refuses_what_is_not_a_torrent(self):
        for encoded, reason in (
                ('%%%', 'not valid base64'),
                (base64.b64encode(b'not bencoded').decode(),
                 'cannot be read'),
                (base64.b64encode(lt.bencode({'info': {}})).decode(),
                 'cannot be read')):
            exc = self.assertRaises(ValueError, metainfo.load, encoded)
            self.assertIn(reason, str(exc))

    def test_load_refuses_a_multi_file_torrent(self):
        directory = os.path.join(self.tempdir, 'two')
        os.makedirs(directory)
        for name in ('a', 'b'):
            with open(os.path.join(directory, name), 'wb') as f:
                f.write(os.urandom(100))
        creator = lt.create_torrent(lt.list_files(directory), MiB,
                                    lt.create_torrent.v1_only)
        lt.set_piece_hashes(creator, self.tempdir)
        encoded = metainfo.encode(lt.bencode(creator.generate()))
        exc = self.assertRaises(ValueError, metainfo.load, encoded)
        self.assertIn('describes 2 files', str(exc))


class PeerAddressTest(base.TestCase):

    def test_format_and_parse(self):
        self.assertEqual('10.0.0.1:6881', metainfo.format_peer('10.0.0.1',
                                                               6881))
        self.assertEqual('[2001:db8::1]:6881',
                         metainfo.format_peer('2001:db8::1', 6881))
        self.assertEqual(('2001:db8::1', 6881),
                         metainfo.parse_peer('[2001:db8::1]:6881'))
        self.assertEqual(('seed.example.org', 1),
                         metainfo.parse_peer('seed.example.org:1'))

    def test_malformed_peers(self):
        for peer in ('host', 'host:', ':80', 'host:0', 'host:70000',
                     'host:http'):
            self.assertRaises(ValueError, metainfo.parse_peer, peer)

    def test_resolve(self):
        self.assertEqual([('127.0.0.1', 6881)],
                         metainfo.resolve_peer('127.0.0.1:6881'))
        self.assertRaises(ValueError, metainfo.resolve_peer,
                          'no-such-host.invalid:6881')

    def test_piece_size_must_be_a_power_of_two_of_16_kib(self):
        self.assertEqual(4 * MiB, metainfo.check_piece_size(4096))
        self.assertEqual(16 * 1024, metainfo.check_piece_size(16))
        for bad in (3, 0, 8, 1000):
            self.assertRaises(exception.ConfigurationError,
                              metainfo.check_piece_size, bad)
