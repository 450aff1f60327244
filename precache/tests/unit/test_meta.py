"""The meta wire contract."""

from precache import exception
from precache import image
from precache import meta
from precache.tests import base

HASH = 'ab' * 64


def make_image(**kw):
    fields = dict(id='11111111-2222-3333-4444-555555555555',
                  disk_format='qcow2', size=10, os_hash_algo='sha512',
                  os_hash_value=HASH)
    fields.update(kw)
    return image.ImageRecord(**fields)


HTTP_SOURCE = {'method': 'http', 'url': 'http://127.0.0.1/x.zst',
               'compression': 'zstd', 'size': 4}


class MetaTest(base.TestCase):

    def test_build_round_trips_through_validate(self):
        built = meta.build(make_image(), [HTTP_SOURCE],
                           targets={'hosts': ['cmp-*']}, pin_until=12.5)
        self.assertEqual('1.0', built['version'])
        self.assertEqual(HASH, built['image']['os_hash_value'])
        self.assertIs(built, meta.validate(built))
        record = image.ImageRecord.from_dict(built['image'])
        self.assertEqual(('sha512', HASH), record.verification)

    def test_generations_increase(self):
        first = meta.build(make_image(), [HTTP_SOURCE])
        second = meta.build(make_image(), [HTTP_SOURCE])
        self.assertGreater(second['generation'], first['generation'])

    def test_checksum_only_image_is_valid(self):
        built = meta.build(make_image(os_hash_algo=None, os_hash_value=None,
                                      checksum='cd' * 16), [HTTP_SOURCE])
        self.assertEqual('cd' * 16, built['image']['checksum'])

    def test_image_without_any_hash_is_refused(self):
        self.assertRaises(exception.InvalidMeta, meta.build,
                          make_image(os_hash_value=None), [HTTP_SOURCE])

    def test_http_source_needs_url_and_compression(self):
        exc = self.assertRaises(exception.InvalidMeta, meta.build,
                                make_image(), [{'method': 'http'}])
        self.assertIn("sources/0: 'url' is a required property", str(exc))

    def test_image_id_with_a_slash_is_refused(self):
        self.assertRaises(exception.InvalidMeta, meta.build,
                          make_image(id='../etc/passwd'), [HTTP_SOURCE])

    def test_unknown_major_version_is_refused(self):
        built = meta.build(make_image(), [HTTP_SOURCE])
        built['version'] = '2.0'
        exc = self.assertRaises(exception.InvalidMeta, meta.validate, built)
        self.assertIn('version 2.0 is not supported', str(exc))

    def test_newer_minor_version_with_extra_keys_is_accepted(self):
        built = meta.build(make_image(), [HTTP_SOURCE])
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
