"""Checks that the real Glance API test harness behaves like a cloud's."""

import hashlib
import os
import uuid

import glanceclient
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from oslotest import base

from precache.tests.fixtures import glance


def _ids(images):
    return sorted(image['id'] for image in images)


class TestGlanceServer(base.BaseTestCase):
    """One Glance, two projects, one image each."""

    def setUp(self):
        super(TestGlanceServer, self).setUp()
        self.glance = self.useFixture(glance.GlanceServerFixture())
        self.other_project = uuid.uuid4().hex
        self.data = os.urandom(3 * 1024 * 1024 + 17)
        self.image = self.glance.create_image(
            self.data, name='mine', tags=['precache'],
            precache_group='compute')
        self.other_data = os.urandom(4096)
        self.other = self.glance.create_image(
            self.other_data, name='theirs', tags=['other'],
            visibility='public', project_id=self.other_project)

    def _list(self, client=None, **filters):
        client = client or self.glance.client()
        return list(client.images.list(filters=filters))

    def test_created_images(self):
        self.assertEqual(self.glance.project_id, self.image['owner'])
        self.assertEqual(self.other_project, self.other['owner'])
        self.assertEqual('active', self.image['status'])
        self.assertEqual(len(self.data), self.image['size'])
        self.assertEqual(['precache'], self.image['tags'])
        self.assertEqual('compute', self.image['precache_group'])
        self.assertEqual('sha512', self.image['os_hash_algo'])
        self.assertEqual(hashlib.md5(self.data).hexdigest(),
                         self.image['checksum'])

    def test_list_filters(self):
        both = _ids([self.image, self.other])
        self.assertEqual(both, _ids(self._list()))
        self.assertEqual([self.image['id']],
                         _ids(self._list(tag=['precache'])))
        self.assertEqual([self.image['id']],
                         _ids(self._list(precache_group='compute')))
        self.assertEqual([], _ids(self._list(precache_group='storage')))
        self.assertEqual([self.other['id']],
                         _ids(self._list(owner=self.other_project)))
        self.assertEqual([self.image['id']],
                         _ids(self._list(visibility='shared')))
        self.assertEqual([self.other['id']],
                         _ids(self._list(visibility='public')))

    def test_non_admin_sees_own_and_public(self):
        mine = self.glance.client(self.other_project,
                                  roles=['member', 'reader'])
        self.assertEqual([self.other['id']], _ids(self._list(mine)))

    def test_download_matches_hash(self):
        client = self.glance.client()
        body = b''.join(client.images.data(self.image['id']))
        self.assertEqual(self.data, body)
        self.assertEqual(hashlib.sha512(body).hexdigest(),
                         self.image['os_hash_value'])

    def test_plain_noauth_session(self):
        """What precache itself does: auth_type none plus an endpoint."""
        sess = ks_session.Session(
            auth=noauth.NoAuth(endpoint=self.glance.endpoint))
        client = glanceclient.Client('2', session=sess)
        images = self._list(client)
        self.assertEqual(_ids([self.image, self.other]), _ids(images))
        for image in images:
            body = b''.join(client.images.data(image['id']))
            self.assertEqual(image['os_hash_value'],
                             hashlib.sha512(body).hexdigest())
