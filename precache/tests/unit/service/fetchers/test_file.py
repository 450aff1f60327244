"""Tests of the ``file`` fetcher and, through it, the fetcher base class."""

import hashlib
import os

from precache.common import exception
from precache.common import plugin
from precache.objects import image as image_mod
from precache.service.fetchers import file as file_fetcher
from precache.tests import base


def _record(image_id, data):
    return image_mod.ImageRecord(
        id=image_id, size=len(data), disk_format='raw',
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest())


class TestFileFetcher(base.TestCase):

    def setUp(self):
        super().setUp()
        self.register_plugin_opts(file_fetcher.FileFetcher)
        self.image_dir = os.path.join(self.tempdir, 'images')
        os.mkdir(self.image_dir)
        self.flags(group='file_fetcher', image_dir=self.image_dir,
                   chunk_size=4096)
        self.fetcher = plugin.load_plugin('precache.fetchers', 'file',
                                          self.conf)
        self.staging_dir = self.conf.service.staging_dir

    def _write(self, name, data):
        path = os.path.join(self.image_dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def _read(self, path):
        with open(path, 'rb') as f:
            return f.read()

    def test_loaded_from_entry_point(self):
        self.assertIsInstance(self.fetcher, file_fetcher.FileFetcher)

    def test_fetch_stages_verified_copy(self):
        data = os.urandom(10000)
        self._write('img-1', data)
        path = self.fetcher.fetch(_record('img-1', data))
        self.assertEqual(os.path.join(self.staging_dir, 'img-1'), path)
        self.assertEqual(data, self._read(path))
        self.assertEqual(['img-1', 'img-1.json'],
                         sorted(os.listdir(self.staging_dir)))

    def test_unchanged_image_not_read_again(self):
        data = b'golden' * 1000
        source = self._write('img-1', data)
        record = _record('img-1', data)
        self.fetcher.fetch(record)
        os.unlink(source)
        # The source is gone: only the staged copy can satisfy this.
        path = self.fetcher.fetch(record)
        self.assertEqual(data, self._read(path))

    def test_changed_image_fetched_again(self):
        self._write('img-1', b'old bytes')
        path = self.fetcher.fetch(_record('img-1', b'old bytes'))
        self._write('img-1', b'new bytes, longer')
        self.assertEqual(path,
                         self.fetcher.fetch(_record('img-1',
                                                    b'new bytes, longer')))
        self.assertEqual(b'new bytes, longer', self._read(path))

    def test_hash_mismatch_leaves_nothing(self):
        self._write('img-1', b'tampered!')
        record = _record('img-1', b'expected!')
        self.assertRaises(exception.HashMismatch, self.fetcher.fetch, record)
        self.assertEqual([], os.listdir(self.staging_dir))

    def test_image_paths_win_over_image_dir(self):
        self._write('img-1', b'from image_dir')
        elsewhere = os.path.join(self.tempdir, 'elsewhere.raw')
        with open(elsewhere, 'wb') as f:
            f.write(b'from image_paths')
        self.flags(group='file_fetcher', image_paths={'img-1': elsewhere})
        path = self.fetcher.fetch(_record('img-1', b'from image_paths'))
        self.assertEqual(b'from image_paths', self._read(path))

    def test_missing_file(self):
        exc = self.assertRaises(exception.ImageNotFound, self.fetcher.fetch,
                                _record('img-2', b'x'))
        self.assertIn(os.path.join(self.image_dir, 'img-2'), str(exc))
        self.assertEqual([], os.listdir(self.staging_dir))

    def test_no_location_configured(self):
        self.flags(group='file_fetcher', image_dir=None)
        exc = self.assertRaises(exception.ImageNotFound, self.fetcher.fetch,
                                _record('img-1', b'x'))
        self.assertIn('image_dir is not set', str(exc))

    def test_id_is_never_a_path(self):
        self.assertRaises(exception.ImageNotFound, self.fetcher.image_path,
                          _record('../etc/passwd', b'x'))
