"""Comparing a host's store with what it should hold (landing.py)."""

import hashlib
import os

import fixtures

import landing

from precache.common import fileutils
from precache.objects import image as image_mod
from precache.tests import base


class InspectTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host_dir = self.useFixture(fixtures.TempDir()).path
        self.base_path = os.path.join(self.host_dir, 'instances', '_base')
        os.makedirs(self.base_path)
        self.digests = landing.DigestCache()

    def land(self, image_id, data):
        path = os.path.join(self.base_path,
                            image_mod.nova_cache_name(image_id))
        with open(path, 'wb') as f:
            f.write(data)
        return hashlib.sha512(data).hexdigest()

    def inspect(self, desired, withdrawn=()):
        return landing.inspect(self.host_dir, self.base_path, desired,
                               set(withdrawn), self.digests)

    def test_converged_store(self):
        desired = {'a': self.land('a', b'aaa'), 'b': self.land('b', b'bb')}
        result = self.inspect(desired, withdrawn=['old'])
        self.assertTrue(landing.converged(result), result)

    def test_missing_wrong_returned_and_partial(self):
        desired = {'a': self.land('a', b'aaa'),
                   'b': hashlib.sha512(b'bb').hexdigest(),
                   'c': hashlib.sha512(b'cc').hexdigest()}
        self.land('c', b'c')  # half of it
        self.land('old', b'old')
        part = os.path.join(self.base_path, 'x.part')
        temp = os.path.join(self.host_dir, 'state',
                            fileutils.TEMP_PREFIX + 'abc')
        os.makedirs(os.path.dirname(temp))
        for path in (part, temp):
            open(path, 'w').close()
        result = self.inspect(desired, withdrawn=['old'])
        self.assertEqual({'missing': ['b'], 'wrong': ['c'],
                          'returned': ['old'],
                          'partial': sorted([part, temp])}, result)
        self.assertFalse(landing.converged(result))

    def test_age_out_removes_the_base_file_once(self):
        self.land('a', b'aaa')
        landing.age_out(self.base_path, 'a')
        landing.age_out(self.base_path, 'a')
        self.assertEqual([], os.listdir(self.base_path))

    def test_digest_is_computed_again_for_a_new_version(self):
        desired = {'a': self.land('a', b'aaa')}
        self.assertTrue(landing.converged(self.inspect(desired)))
        path = os.path.join(self.base_path, image_mod.nova_cache_name('a'))
        os.unlink(path)
        self.land('a', b'not a')
        self.assertEqual(['a'], self.inspect(desired)['wrong'])
