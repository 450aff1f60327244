"""The glance and static listers and the glance fetcher on a real Glance."""

import dataclasses
import hashlib
import os
import uuid

from precache.common import exception
from precache.common import plugin
from precache.objects import image as image_mod
from precache.tests.fixtures import glance as glance_server
from precache.tests.functional import base


class TestGlancePlugins(base.FunctionalTestCase):
    """One Glance (started once for the class) with these images.

    ========= ========== ============ ================ =====================
    name      owner      visibility   tags             properties
    ========= ========== ============ ================ =====================
    golden    project    shared       golden, linux    precache=true
    windows   project    private      golden           precache=true
    public    other      public       golden
    community third      community    golden           precache=true
    queued    project    shared       golden, linux    precache=true (no data)
    ========= ========== ============ ================ =====================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.use_class_fixture(
            glance_server.GlanceServerFixture())
        cls._create_images()

    @classmethod
    def _create_images(cls):
        cls.other = uuid.uuid4().hex
        cls.third = uuid.uuid4().hex
        cls.data = os.urandom(3 * 1024 * 1024 + 17)
        create = cls.server.create_image
        cls.ids = {
            'golden': create(cls.data, name='golden',
                             tags=['golden', 'linux'],
                             precache='true')['id'],
            'windows': create(b'w' * 4096, name='windows', tags=['golden'],
                              visibility='private', precache='true')['id'],
            'public': create(b'p' * 4096, name='public', tags=['golden'],
                             visibility='public', project_id=cls.other)['id'],
            'community': create(b'c' * 4096, name='community',
                                tags=['golden'], visibility='community',
                                project_id=cls.third,
                                precache='true')['id'],
        }
        queued = cls.server.client().images.create(
            name='queued', disk_format='raw', container_format='bare',
            tags=['golden', 'linux'], precache='true')
        cls.ids['queued'] = queued['id']
        cls.names = {image_id: name for name, image_id in cls.ids.items()}

    def setUp(self):
        super().setUp()
        self.use_glance(self.server)

    def _load(self, namespace, name):
        return plugin.load_plugin(namespace, name, self.conf)

    # -- the glance lister --------------------------------------------------

    def _records(self, **flags):
        lister = self._load('precache.listers', 'glance')
        self.flags(group='glance_lister', **flags)
        return lister.list()

    def _glance_listed(self, **flags):
        """Return the sorted names of the images listed with ``flags``."""
        return sorted(self.names[r.id] for r in self._records(**flags))

    def test_glance_lister_only_active_images(self):
        self.assertEqual(['community', 'golden', 'public', 'windows'],
                         self._glance_listed())

    def test_glance_lister_tags(self):
        self.assertEqual(['community', 'golden', 'public', 'windows'],
                         self._glance_listed(tags=['golden']))
        self.assertEqual(['golden'],
                         self._glance_listed(tags=['golden', 'linux']))
        self.assertEqual([], self._glance_listed(tags=['nothing']))

    def test_glance_lister_properties(self):
        self.assertEqual(['community', 'golden', 'windows'],
                         self._glance_listed(properties={'precache': 'true'}))
        self.assertEqual(['windows'], self._glance_listed(
            properties={'precache': 'true', 'name': 'windows'}))
        self.assertEqual([], self._glance_listed(
            properties={'precache': 'false'}))

    def test_glance_lister_owners(self):
        self.assertEqual(['golden', 'windows'], self._glance_listed(
            owners=[self.server.project_id]))
        self.assertEqual(['community', 'public'], self._glance_listed(
            owners=[self.other, self.third]))

    def test_glance_lister_visibility(self):
        for visibility in ('public', 'private', 'shared', 'community'):
            expected = {'public': ['public'], 'private': ['windows'],
                        'shared': ['golden'],
                        'community': ['community']}[visibility]
            self.assertEqual(expected,
                             self._glance_listed(visibility=visibility),
                             visibility)

    def test_glance_lister_records(self):
        [record] = self._records(tags=['linux'])
        self.assertEqual(self.ids['golden'], record.id)
        self.assertEqual(len(self.data), record.size)
        self.assertEqual('sha512', record.os_hash_algo)
        self.assertEqual(hashlib.sha512(self.data).hexdigest(),
                         record.os_hash_value)
        self.assertEqual(['glance'], record.listed_by)

    # -- the static lister --------------------------------------------------

    def test_static_lister(self):
        lister = self._load('precache.listers', 'static')
        missing = str(uuid.uuid4())
        self.flags(group='static_lister', image_ids=[
            self.ids['golden'], self.ids['queued'], missing,
            self.ids['public']])
        records = lister.list()
        self.assertEqual([self.ids['golden'], self.ids['public']],
                         [r.id for r in records])
        self.assertEqual(hashlib.sha512(self.data).hexdigest(),
                         records[0].os_hash_value)
        self.assertEqual(['static'], records[0].listed_by)

    # -- the glance fetcher -------------------------------------------------

    def _golden(self):
        image = self.server.client().images.get(self.ids['golden'])
        return image_mod.ImageRecord.from_glance(image)

    def _staged(self):
        return sorted(os.listdir(self.conf.service.staging_dir))

    def test_glance_fetcher_verifies_and_stages(self):
        self.flags(group='glance', download_chunk_size=64 * 1024)
        fetcher = self._load('precache.fetchers', 'glance')
        record = self._golden()
        path = fetcher.fetch(record)
        with open(path, 'rb') as f:
            self.assertEqual(self.data, f.read())
        self.assertEqual([record.id, record.id + '.json'], self._staged())

    def test_glance_fetcher_refuses_tampered_record(self):
        fetcher = self._load('precache.fetchers', 'glance')
        record = dataclasses.replace(
            self._golden(),
            os_hash_value=hashlib.sha512(b'something else').hexdigest())
        self.assertRaises(exception.HashMismatch, fetcher.fetch, record)
        self.assertEqual([], self._staged())

    def test_glance_fetcher_missing_and_dataless_images(self):
        fetcher = self._load('precache.fetchers', 'glance')
        for image_id in (str(uuid.uuid4()), self.ids['queued']):
            record = dataclasses.replace(self._golden(), id=image_id)
            exc = self.assertRaises(exception.ImageNotFound, fetcher.fetch,
                                    record)
            self.assertIn(image_id, str(exc))
        self.assertEqual([], self._staged())
