"""The directory store: naming, its own lock and expiry."""

import os
import time

from precache.agent.stores import directory
from precache.common import exception
from precache.common import fileutils
from precache.tests.unit.agent.stores import test_base as helpers

DAY = 86400


class TestDirectoryStore(helpers.StoreTestCase):

    def setUp(self):
        super().setUp()
        self.store = helpers.directory_store(self, ttl=DAY)

    def land(self, image_id, age=0):
        image = helpers.make_image(image_id)
        self.store.land(image, helpers.writer(helpers.DATA))
        mtime = time.time() - age
        os.utime(self.store.path(image), (mtime, mtime))
        return image

    def inventory_ids(self):
        return [entry['image_id'] for entry in self.store.inventory()]

    def test_path_is_image_id(self):
        image = helpers.make_image('abc-123')
        self.assertEqual(os.path.join(self.tempdir, 'images', 'abc-123'),
                         self.store.path(image))

    def test_image_id_must_be_a_file_name(self):
        for image_id in ('../etc/passwd', '.hidden', 'a/b', ''):
            exc = self.assertRaises(exception.StoreFailed, self.store.land,
                                    helpers.make_image(image_id),
                                    helpers.writer(helpers.DATA))
            self.assertIn('not usable as a file name', str(exc))

    def test_own_lock(self):
        image = helpers.make_image('abc-123')
        seen = []

        def write(fileobj):
            seen.extend(os.listdir(os.path.join(self.store.cache_dir,
                                                '.locks')))
            fileobj.write(helpers.DATA)

        self.store.land(image, write)
        self.assertEqual([directory.LOCK_PREFIX + 'abc-123'], seen)

    def test_creates_its_directory(self):
        self.assertFalse(os.path.exists(self.store.cache_dir))
        self.land('abc')
        self.assertEqual(['abc'], self.cache_files(self.store))

    def test_expire(self):
        self.land('old-unwanted', age=2 * DAY)
        self.land('old-wanted', age=2 * DAY)
        self.land('young-unwanted', age=DAY / 2)
        leftover = os.path.join(self.store.cache_dir,
                                fileutils.TEMP_PREFIX + 'x.part')
        open(leftover, 'w').close()
        os.utime(leftover, (0, 0))
        self.assertEqual(['old-unwanted'],
                         self.store.expire(['old-wanted']))
        self.assertEqual(['old-wanted', 'young-unwanted'],
                         self.inventory_ids())
        self.assertTrue(os.path.exists(leftover))

    def test_ttl_zero_keeps_everything(self):
        self.flags(group='directory_store', ttl=0)
        self.land('old', age=100 * DAY)
        self.assertEqual([], self.store.expire([]))
        self.assertEqual(['old'], self.inventory_ids())

    def test_expire_rechecks_under_lock(self):
        image = self.land('old', age=2 * DAY)
        cutoff = time.time() - DAY
        # Touched (e.g. landed again) after the inventory was taken.
        self.store.touch(image)
        self.assertFalse(self.store._remove_if_older('old', cutoff))
        self.assertTrue(self.store.exists(image))

    def test_all_images_count_toward_cap(self):
        self.land('abc')
        self.assertGreaterEqual(self.store.landed_bytes(),
                                len(helpers.DATA))
