"""The meta wire contract."""

from precache.common import exception
from precache.objects import image
from precache.objects import meta
from precache.tests import base

HASH = 'ab' * 64


def make_image(**kw):
    fields = dict(id='11111111-2222-3333-4444-555555555555',
                  disk_format='qcow2', size=10, os_hash_algo='sha512',
                  os_hash_value=HASH)
    fields.update(kw)
    return image.ImageRecord(**fields)


def build(image_record, sources, *args, **kw):
    """:func:`precache.objects.meta.build` with the tests' epoch."""
    kw.setdefault('epoch', base.EPOCH)
    return meta.build(image_record, sources, *args, **kw)


HTTP_SOURCE = {'method': 'http', 'url': 'http://127.0.0.1/x.zst',
               'compression': 'zstd', 'size': 4}
BITTORRENT_SOURCE = {'method': 'bittorrent', 'torrent': 'ZDQ6aW5mb2Vl',
                     'info_hash': 'a1' * 20,
                     'peers': ['127.0.0.1:6881', 'seed.example.org:51413',
                               '[2001:db8::1]:6881'],
                     'compression': 'zstd', 'size': 4,
                     'hash_algo': 'sha256', 'hash_value': 'cd' * 32}


class MetaTest(base.TestCase):

    def test_build_round_trips_through_validate(self):
        built = build(make_image(), [HTTP_SOURCE],
                      targets={'hosts': ['cmp-*']}, pin_until=12.5)
        self.assertEqual('1.5', built['version'])
        self.assertEqual(base.EPOCH, built['epoch'])
        self.assertEqual(HASH, built['image']['os_hash_value'])
        self.assertIs(built, meta.validate(built))
        record = image.ImageRecord.from_dict(built['image'])
        self.assertEqual(('sha512', HASH), record.verification)

    def test_generations_increase(self):
        first = build(make_image(), [HTTP_SOURCE])
        second = build(make_image(), [HTTP_SOURCE])
        self.assertGreater(second['generation'], first['generation'])

    def test_checksum_only_image_is_valid(self):
        built = build(make_image(os_hash_algo=None, os_hash_value=None,
                                 checksum='cd' * 16), [HTTP_SOURCE])
        self.assertEqual('cd' * 16, built['image']['checksum'])

    def test_image_without_any_hash_is_refused(self):
        self.assertRaises(exception.InvalidMeta, build,
                          make_image(os_hash_value=None), [HTTP_SOURCE])

    def test_http_source_needs_url_and_compression(self):
        exc = self.assertRaises(exception.InvalidMeta, build,
                                make_image(), [{'method': 'http'}])
        self.assertIn("sources/0: 'url' is a required property", str(exc))

    def test_image_id_with_a_slash_is_refused(self):
        self.assertRaises(exception.InvalidMeta, build,
                          make_image(id='../etc/passwd'), [HTTP_SOURCE])

    def test_unknown_major_version_is_refused(self):
        built = build(make_image(), [HTTP_SOURCE])
        built['version'] = '2.0'
        exc = self.assertRaises(exception.InvalidMeta, meta.validate, built)
        self.assertIn('version 2.0 is not supported', str(exc))

    def test_newer_minor_version_with_extra_keys_is_accepted(self):
        built = build(make_image(), [HTTP_SOURCE])
        built['version'] = '1.7'
        built['future_key'] = {'x': 1}
        self.assertIs(built, meta.validate(built))

    def test_not_a_dict(self):
        self.assertRaises(exception.InvalidMeta, meta.validate, ['x'])

    def test_nova_cache_name_is_sha1_of_the_id(self):
        # sha1('11111111-2222-3333-4444-555555555555'), as Nova names it.
        import hashlib
        expected = hashlib.sha1(make_image().id.encode()).hexdigest()
        self.assertEqual(expected, make_image().cache_name)
        self.assertEqual(40, len(expected))


class BitTorrentSourceSchemaTest(base.TestCase):

    def build(self, **changes):
        source = dict(BITTORRENT_SOURCE, **changes)
        return build(make_image(), [source, HTTP_SOURCE])

    def test_bittorrent_source_is_valid(self):
        built = self.build()
        self.assertEqual(BITTORRENT_SOURCE, built['sources'][0])

    def test_peers_are_optional(self):
        source = dict(BITTORRENT_SOURCE)
        del source['peers']
        build(make_image(), [source])

    def test_torrent_info_hash_and_compression_are_required(self):
        for key in ('torrent', 'info_hash', 'compression'):
            source = dict(BITTORRENT_SOURCE)
            del source[key]
            exc = self.assertRaises(exception.InvalidMeta, build,
                                    make_image(), [source])
            self.assertIn("sources/0: '%s' is a required property" % key,
                          str(exc))

    def test_torrent_must_be_base64(self):
        exc = self.assertRaises(exception.InvalidMeta, self.build,
                                torrent='not base64!')
        self.assertIn('sources/0/torrent', str(exc))

    def test_info_hash_must_be_a_sha1(self):
        for value in ('ab' * 32, 'zz' * 20):
            exc = self.assertRaises(exception.InvalidMeta, self.build,
                                    info_hash=value)
            self.assertIn('sources/0/info_hash', str(exc))

    def test_peers_must_be_host_and_port(self):
        for peer in ('127.0.0.1', 'host:port', 'a b:1', '::1:6881',
                     'http://seed:6881'):
            exc = self.assertRaises(exception.InvalidMeta, self.build,
                                    peers=[peer])
            self.assertIn('sources/0/peers/0', str(exc), peer)

    def test_inject_url_must_be_an_http_url(self):
        built = self.build(inject_url='http://seed:6969/inject')
        self.assertEqual('http://seed:6969/inject',
                         built['sources'][0]['inject_url'])
        exc = self.assertRaises(exception.InvalidMeta, self.build,
                                inject_url='seed:6969/inject')
        self.assertIn('sources/0/inject_url', str(exc))

    def test_version_1_0_meta_is_still_accepted(self):
        built = build(make_image(), [HTTP_SOURCE])
        built['version'] = '1.0'
        self.assertIs(built, meta.validate(built))


class DeltaSourceSchemaTest(base.TestCase):

    def delta(self, transport, **changes):
        source = dict(transport, method='delta',
                      transport=transport['method'], base={'id': 'older'},
                      url='http://127.0.0.1/d.zst', **changes)
        return build(make_image(), [source, HTTP_SOURCE])

    def test_every_transport_is_valid(self):
        for transport in (HTTP_SOURCE, BITTORRENT_SOURCE,
                          dict(HTTP_SOURCE, method='swift')):
            built = self.delta(transport)
            self.assertEqual(transport['method'],
                             built['sources'][0]['transport'])

    def test_meta_1_3_delta_without_transport_is_valid(self):
        source = dict(HTTP_SOURCE, method='delta', base={'id': 'older'})
        build(make_image(), [source])

    def test_a_bittorrent_delta_needs_its_torrent(self):
        for key in ('torrent', 'info_hash'):
            transport = dict(BITTORRENT_SOURCE)
            del transport[key]
            exc = self.assertRaises(exception.InvalidMeta, self.delta,
                                    transport)
            self.assertIn("'%s' is a required property" % key, str(exc))

    def test_every_delta_needs_a_url_and_its_base(self):
        for key in ('url', 'base'):
            source = dict(BITTORRENT_SOURCE, method='delta',
                          transport='bittorrent', base={'id': 'older'},
                          url='http://127.0.0.1/d.zst')
            del source[key]
            self.assertRaises(exception.InvalidMeta, build, make_image(),
                              [source])

    def test_a_delta_cannot_travel_as_a_delta(self):
        exc = self.assertRaises(exception.InvalidMeta, self.delta,
                                dict(HTTP_SOURCE, method='delta'))
        self.assertIn('sources/0/transport', str(exc))

    def test_1_5_delta_names_its_chunking(self):
        built = self.delta(HTTP_SOURCE, chunking={'average': 8192})
        self.assertEqual('1.5', built['version'])
        self.assertEqual(8192, meta.delta_average(built['sources']))

    def test_1_4_delta_without_chunking_is_still_accepted(self):
        built = self.delta(HTTP_SOURCE)
        built['version'] = '1.4'
        self.assertIs(built, meta.validate(built))
        self.assertIsNone(meta.delta_average(built['sources']))

    def test_no_delta_names_no_average(self):
        built = build(make_image(), [HTTP_SOURCE])
        self.assertIsNone(meta.delta_average(built['sources']))

    def test_chunking_needs_a_possible_average(self):
        for chunking in ({}, {'average': '8192'}, {'average': 100},
                         {'average': 1024 * 1024}):
            exc = self.assertRaises(exception.InvalidMeta, self.delta,
                                    HTTP_SOURCE, chunking=chunking)
            self.assertIn('sources/0/chunking', str(exc))
