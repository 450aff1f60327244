"""The swift fetcher on a real Swift (tempauth)."""

import hashlib
import os
import uuid

from precache.common import exception
from precache.common import plugin
from precache.objects import image as image_mod
from precache.tests.fixtures import swift as swift_server
from precache.tests.functional import base


def _record(data, image_id=None):
    return image_mod.ImageRecord(
        id=image_id or str(uuid.uuid4()), size=len(data), disk_format='raw',
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest())


class TestSwiftFetcher(base.FunctionalTestCase):
    """One Swift (started once for the class) holding Glance-like objects."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.use_class_fixture(swift_server.SwiftServerFixture())

    def setUp(self):
        super().setUp()
        self.fetcher = plugin.load_plugin('precache.fetchers', 'swift',
                                          self.conf)
        self.flags(group='swift_fetcher', auth_url=self.server.auth_url,
                   auth_version='1', user=self.server.user,
                   key=self.server.key, chunk_size=64 * 1024, retries=0)
        self.conn = self.server.connection()

    def _upload(self, data, container='glance', name=None):
        """Store ``data`` as Glance's swift store would; return a record."""
        record = _record(data)
        self.conn.put_container(container)
        self.conn.put_object(container, name or record.id, data)
        return record

    def _staged(self):
        return sorted(os.listdir(self.conf.service.staging_dir))

    def test_fetch_verifies_and_stages(self):
        data = os.urandom(2 * 1024 * 1024 + 5)
        record = self._upload(data)
        path = self.fetcher.fetch(record)
        with open(path, 'rb') as f:
            self.assertEqual(data, f.read())
        self.assertEqual([record.id, record.id + '.json'], self._staged())

    def test_container_and_object_name_configurable(self):
        data = os.urandom(100 * 1024)
        record = _record(data)
        self._upload(data, container='images',
                     name='%s.%s' % (record.id, record.disk_format))
        self.flags(group='swift_fetcher', container='images',
                   object_name_format='{image_id}.{disk_format}')
        path = self.fetcher.fetch(record)
        with open(path, 'rb') as f:
            self.assertEqual(data, f.read())

    def test_missing_object(self):
        self.conn.put_container('glance')
        record = _record(b'never uploaded')
        exc = self.assertRaises(exception.ImageNotFound, self.fetcher.fetch,
                                record)
        self.assertIn('no object %s in container glance' % record.id,
                      str(exc))
        self.assertEqual([], self._staged())

    def test_wrong_bytes(self):
        record = self._upload(b'what Swift holds' * 1000)
        record.os_hash_value = hashlib.sha512(
            b'what Glance says' * 1000).hexdigest()
        self.assertRaises(exception.HashMismatch, self.fetcher.fetch, record)
        self.assertEqual([], self._staged())

    def test_auth_failure_names_object(self):
        record = self._upload(b'data')
        self.flags(group='swift_fetcher', key='wrong')
        exc = self.assertRaises(exception.FetchFailed, self.fetcher.fetch,
                                record)
        self.assertIn('glance/%s' % record.id, str(exc))
        self.assertEqual([], self._staged())
