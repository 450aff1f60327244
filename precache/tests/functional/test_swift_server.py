"""Checks that the real Swift test harness serves objects and TempURLs."""

import os
import time
import uuid

from oslotest import base
import requests
from swiftclient import utils as swift_utils

from precache.tests.fixtures import swift

TEMPURL_TTL = 300


class TestSwiftServer(base.BaseTestCase):
    """One Swift, one container, one object."""

    def setUp(self):
        super(TestSwiftServer, self).setUp()
        self.swift = self.useFixture(swift.SwiftServerFixture())
        self.conn = self.swift.connection()
        self.container = 'images-%s' % uuid.uuid4().hex[:8]
        self.name = 'image.raw'
        self.data = os.urandom(2 * 1024 * 1024 + 5)
        self.conn.put_container(self.container)
        self.etag = self.conn.put_object(self.container, self.name,
                                         self.data)

    def test_get_object(self):
        headers, body = self.conn.get_object(self.container, self.name)
        self.assertEqual(self.data, body)
        self.assertEqual(self.etag, headers['etag'])
        self.assertEqual(str(len(self.data)), headers['content-length'])

    def test_storage_url_and_token(self):
        self.assertTrue(self.swift.storage_url.endswith('/v1/AUTH_test'))
        resp = requests.head(self.swift.storage_url,
                             headers={'X-Auth-Token': self.swift.token},
                             timeout=10)
        self.assertEqual(204, resp.status_code)
        resp = requests.head(self.swift.storage_url, timeout=10)
        self.assertEqual(401, resp.status_code)

    def _temp_url(self, key, method='GET'):
        path = '%s/%s/%s' % (self.swift.storage_url.split('/', 3)[3],
                             self.container, self.name)
        signed = swift_utils.generate_temp_url(
            '/' + path, int(time.time()) + TEMPURL_TTL, key, method)
        return self.swift.proxy_url + signed

    def test_temp_url(self):
        key = uuid.uuid4().hex
        self.swift.set_tempurl_key(key)
        resp = requests.get(self._temp_url(key), timeout=30)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(self.data, resp.content)

    def test_temp_url_wrong_key(self):
        self.swift.set_tempurl_key(uuid.uuid4().hex)
        resp = requests.get(self._temp_url('not-the-key'), timeout=30)
        self.assertEqual(401, resp.status_code)
