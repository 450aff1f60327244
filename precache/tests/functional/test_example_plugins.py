"""The example plugin package, installed in the test environment.

``examples/precache-plugin-example`` is a package of its own (tox installs
it with pip): the service finds its ``manifest`` lister and ``url``
fetcher through their entry points alone, and its options through the
``oslo.config.opts`` namespace it declares.
"""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys

from precache.common import plugin
from precache.common import verify
from precache.common import webserver
from precache.tests.fixtures import distributor
from precache.tests.functional import base
from precache.tests.functional import test_distribution
from precache.tests.unit.service import test_pipeline


class _Quiet(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


class ExamplePluginsTest(base.FunctionalTestCase):

    image_id = '3c9a5e1f-2b7d-4e08-9c61-5a4f3e2d1c0b'

    def setUp(self):
        super().setUp()
        images = os.path.join(self.tempdir, 'origin')
        os.makedirs(images)
        self.qcow2, _ = test_distribution.make_qcow2(images, self.image_id,
                                                     data_mib=1)
        handler = functools.partial(_Quiet, directory=images)
        self.origin = webserver.BackgroundHTTPServer(('127.0.0.1', 0),
                                                     handler)
        self.origin.start('example-origin')
        self.addCleanup(self.origin.stop)
        with open(self.qcow2, 'rb') as f:
            data = f.read()
        self.manifest = os.path.join(self.tempdir, 'images.json')
        with open(self.manifest, 'w') as f:
            json.dump([{'id': self.image_id, 'name': 'example',
                        'disk_format': 'qcow2', 'size': len(data),
                        'os_hash_algo': 'sha512',
                        'os_hash_value': hashlib.sha512(data).hexdigest()}],
                      f)

    def configure(self):
        self.flags(group='service', listers=['manifest'], fetcher='url',
                   server='http')
        for namespace, name, values in (
                ('precache.listers', 'manifest', {'path': self.manifest}),
                ('precache.fetchers', 'url', {
                    'base_url': 'http://127.0.0.1:%d/' % self.origin.port}),
                ('precache.servers', 'http', {
                    'document_root': os.path.join(self.tempdir, 'www'),
                    'bind_host': '127.0.0.1', 'bind_port': 0})):
            cls = plugin.load_plugin_class(namespace, name)
            self.register_plugin_opts(cls)
            self.flags(group=cls.get_config_group(), **values)

    def test_the_service_runs_the_example_plugins(self):
        self.configure()
        agent_api = test_pipeline.FakeAgentAPI()
        pipe = distributor.fanout_pipeline(self.conf, self.tempdir,
                                           agent_api)
        self.assertEqual('precache_example.lister',
                         type(pipe.listers[0]).__module__)
        self.assertEqual('precache_example.fetcher',
                         type(pipe.fetcher).__module__)
        pipe.start()
        self.addCleanup(pipe.stop)
        outcome, = pipe.run(context=None)
        self.assertTrue(outcome.distributed, outcome.error)
        self.assertEqual([self.image_id], [c[0] for c in agent_api.casts])
        self.assertEqual(verify.file_digest(self.qcow2),
                         verify.file_digest(
                             pipe.fetcher.staging.path(
                                 pipe.listers[0].get(self.image_id))))

    def test_its_options_are_in_a_generated_sample(self):
        result = subprocess.run(
            [sys.executable, '-m', 'oslo_config.generator',
             '--namespace', 'precache_example'],
            capture_output=True, text=True, check=True)
        for text in ('[manifest_lister]', '#path = <None>',
                     '#target_hosts =', '[url_fetcher]', '#base_url = '):
            self.assertIn(text, result.stdout)
