"""Tests of the glance image server: the agents' own download."""

from precache.objects import image as image_mod
from precache.objects import meta
from precache.service.servers import glance
from precache.tests import base


class TestGlanceServer(base.TestCase):

    def setUp(self):
        super().setUp()
        self.server = glance.GlanceServer(self.conf)
        self.image = image_mod.ImageRecord(
            id='0c9a1d6e-8e0b-4a4e-9d43-2a0b1f5b7c61', disk_format='qcow2',
            size=1024, os_hash_algo='sha512', os_hash_value='ab' * 64)

    def test_needs_no_local_copy(self):
        self.assertFalse(self.server.needs_local_copy)

    def test_serve_returns_glance_source(self):
        sources = self.server.serve(self.image, None)
        self.assertEqual([{'method': 'glance'}], sources)
        meta.build(self.image, sources, epoch=base.EPOCH)

    def test_no_options(self):
        self.assertEqual([], glance.GlanceServer.get_config_opts())
