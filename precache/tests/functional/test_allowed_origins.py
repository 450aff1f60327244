"""``[agent] allowed_origins`` on a real agent: a signed cast is not enough.

A cast signed with the service's key (as one signed with a stolen key
would be) names an origin outside the agent's ``allowed_origins``: the
real ``precache-agent`` refuses that source without connecting to it
(the foreign origin counts its connections: none) and downloads from the
next, allowed source; with no allowed source, the request fails naming
the foreign host and nothing lands.
"""

import hashlib
import os

from oslo_config import cfg
import oslo_messaging as messaging

from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_distribution
from precache.tests.functional import test_hostile_casts

IMAGE_ID = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'
SIZE = 1024 * 1024


class AllowedOriginsTest(test_distribution.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.endpoint = self.useFixture(
            control_plane.ServiceEndpointFixture(self.conf))
        www = os.path.join(self.tempdir, 'www')
        os.makedirs(www)
        self.data = b'precache allowed-origins test image\n' * (SIZE // 36)
        with open(os.path.join(www, IMAGE_ID), 'wb') as f:
            f.write(self.data)
        self.origin = test_hostile_casts.CountingOrigin(www)
        self.addCleanup(self.origin.stop)
        self.foreign = test_hostile_casts.CountingOrigin(www)
        self.addCleanup(self.foreign.stop)
        # Another name for the same loopback address: a host of its own.
        self.foreign_url = self.foreign.url.replace('127.0.0.1',
                                                    'localhost')
        self.agent = self.useFixture(control_plane.AgentProcessFixture(
            self.messaging, 'origins-target', self.tempdir,
            options={'agent': {'allowed_origins': [self.origin.url]}}))
        self.endpoint.wait_for_heartbeat(self.agent.host)
        transport = messaging.get_rpc_transport(cfg.CONF)
        self.addCleanup(transport.cleanup)
        self.client = messaging.get_rpc_client(transport, messaging.Target(
            topic=self.messaging.agent_topic, version='1.0'))

    def cast(self, meta):
        self.client.prepare(server=self.agent.host).cast(
            {}, 'cache', image_id=IMAGE_ID, meta=meta)

    def meta(self, *urls):
        record = image_mod.ImageRecord(
            id=IMAGE_ID, name='origins', disk_format='raw',
            size=len(self.data), os_hash_algo='sha512',
            os_hash_value=hashlib.sha512(self.data).hexdigest())
        return self.sign(meta_mod.build(
            record, [{'method': 'http', 'url': url + IMAGE_ID,
                      'compression': 'none', 'size': len(self.data)}
                     for url in urls],
            epoch=meta_mod.new_epoch()))

    def final_report(self):
        def found(endpoint):
            return next((r for r in endpoint.reports
                         if r['host'] == self.agent.host and
                         r['image_id'] == IMAGE_ID and
                         r['status'] != 'downloading'), None)
        return self.endpoint.wait_for(found, 120, 'a final report')

    def landed(self):
        path = os.path.join(self.agent.base_path,
                            image_mod.nova_cache_name(IMAGE_ID))
        return os.path.exists(path)

    def test_foreign_origin_is_refused_without_connecting(self):
        self.cast(self.meta(self.foreign_url))
        report = self.final_report()
        self.assertEqual('failed', report['status'], report)
        self.assertIn('localhost', report['reason'])
        self.assertIn('allowed_origins', report['reason'])
        self.assertEqual(0, self.foreign.connections)
        self.assertEqual(0, self.origin.connections)
        self.assertFalse(self.landed())

    def test_next_allowed_source_is_used(self):
        self.cast(self.meta(self.foreign_url, self.origin.url))
        report = self.final_report()
        self.assertEqual('cached', report['status'], report)
        self.assertEqual(0, self.foreign.connections)
        self.assertGreaterEqual(self.origin.connections, 1)
        self.assertTrue(self.landed())
