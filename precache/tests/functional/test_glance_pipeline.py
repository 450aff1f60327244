"""Glance to agent bytes: list and fetch from a real Glance, compress and
serve over HTTP; the served bytes decompress to exactly Glance's bytes."""

import hashlib
import os

import requests

from precache.agent import download
from precache.common import compression
from precache.common import plugin
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.tests.fixtures import distributor
from precache.tests.fixtures import glance as glance_server
from precache.tests.functional import base
from precache.tests.unit.service import test_pipeline


class GlancePipelineTest(base.FunctionalTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.use_class_fixture(
            glance_server.GlanceServerFixture())
        # Like a disk image: random, text and a zero run.
        cls.data = (os.urandom(2 * 1024 * 1024) +
                    b'precache golden image\n' * 100000 +
                    bytes(3 * 1024 * 1024))
        cls.image = cls.server.create_image(
            cls.data, name='golden', tags=['precache-pipeline'])
        cls.other = cls.server.create_image(b'x' * 1000, name='other')

    def setUp(self):
        super().setUp()
        self.use_glance(self.server)
        self.flags(group='service', listers=['glance'], fetcher='glance',
                   server='http')
        for namespace, name in (('precache.listers', 'glance'),
                                ('precache.servers', 'http')):
            self.register_plugin_opts(
                plugin.load_plugin_class(namespace, name))
        self.flags(group='glance_lister', tags=['precache-pipeline'])
        self.flags(group='http_server', bind_host='127.0.0.1', bind_port=0,
                   document_root=os.path.join(self.tempdir, 'www'))

    def run_pipeline(self):
        agent_api = test_pipeline.FakeAgentAPI()
        pipe = distributor.fanout_pipeline(self.conf, self.tempdir, agent_api)
        pipe.start()
        self.addCleanup(pipe.stop)
        outcomes = pipe.run(context=None)
        return outcomes, agent_api.casts

    def download(self, source):
        response = requests.get(source['url'], timeout=30)
        response.raise_for_status()
        self.assertEqual(source['size'], len(response.content))
        self.assertEqual(source['hash_value'],
                         hashlib.sha256(response.content).hexdigest())
        parts = []

        class Sink(object):
            def write(self, data):
                parts.append(bytes(data))

        decompressor = compression.decompressor(source['compression'],
                                                Sink())
        decompressor.write(response.content)
        decompressor.close()
        return b''.join(parts)

    def test_served_bytes_are_glance_bytes(self):
        for algorithm in ('zstd', 'gzip', 'none'):
            self.flags(group='http_server', compression=algorithm)
            outcomes, casts = self.run_pipeline()
            self.assertEqual([self.image['id']],
                             [o.image_id for o in outcomes])
            (image_id, meta, host), = casts
            meta_mod.validate(meta)
            self.assertEqual(self.image['os_hash_value'],
                             meta['image']['os_hash_value'])
            source = meta['sources'][0]
            self.assertEqual(algorithm, source['compression'])
            served = self.download(source)
            self.assertEqual(self.data, served)
            self.assertEqual(self.image['os_hash_value'],
                             hashlib.sha512(served).hexdigest())
            if algorithm != 'none':
                self.assertLess(source['size'], len(self.data))

    def test_agent_downloads_from_glance_directly(self):
        # The glance server plugin: no local copy, agents use Glance as
        # Nova would (the baseline data plane).
        self.flags(group='service', server='glance')
        outcomes, casts = self.run_pipeline()
        (image_id, meta, host), = casts
        self.assertEqual([{'method': 'glance'}], meta['sources'])
        self.assertFalse(os.path.exists(os.path.join(
            self.conf.service.staging_dir, image_id)))
        record = image_mod.ImageRecord.from_dict(meta['image'])
        landed = os.path.join(self.tempdir, 'landed')
        with open(landed, 'wb') as f:
            result = download.Downloader(self.conf).download(
                record, meta['sources'], f)
        self.assertEqual('glance', result['method'])
        with open(landed, 'rb') as f:
            self.assertEqual(self.data, f.read())
