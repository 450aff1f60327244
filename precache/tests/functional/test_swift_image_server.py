"""The ``swift`` ImageServer on a real Swift, with real agents.

Agents land an image through TempURLs (one object, and a Static Large
Object); the objects of an image no longer listed stay for the grace
period and are deleted after it, and those of a changed image's older
version get Swift's X-Delete-After of the grace period; an expired
TempURL is refused by Swift and the agent falls back to the service's
http source listed second.
"""

import datetime
import os
import time

from oslo_utils import fixture as utils_fixture
from oslo_utils import timeutils
import requests

from precache.agent import rpcapi as agent_rpcapi
from precache.common import plugin
from precache.common import rpc
from precache.objects import meta as meta_mod
from precache.service.servers import swift as swift_server_mod
from precache.service.servers import tempurl
from precache.tests import base
from precache.tests.fixtures import distributor
from precache.tests.fixtures import swift as swift_fixture
from precache.tests.functional import test_distribution

IMAGE_ID = '5d2c7a1e-3b4f-4a6e-9c8d-7e6f5a4b3c2d'
GRACE = 600


class SwiftTestMixin(object):
    """A real Swift for the test class; the ``swift`` server's options."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.swift = cls.use_class_fixture(swift_fixture.SwiftServerFixture())

    def configure_swift_server(self, prefix):
        """Set the server's options, a container of its own, a key."""
        self.container = '%s-%s' % (prefix,
                                    os.path.basename(self.tempdir)[-8:])
        self.register_plugin_opts(swift_server_mod.SwiftServer)
        self.flags(group='swift_server', auth_url=self.swift.auth_url,
                   auth_version='1', user=self.swift.user,
                   key=self.swift.key, container=self.container, retries=0)
        self.swift.set_tempurl_key('precache-test-key')


class SwiftImageServerTest(SwiftTestMixin,
                           test_distribution.DistributionTestCase):

    def configure_service(self):
        super().configure_service()
        self.configure_swift_server('precache')
        self.flags(group='service', server='swift',
                   retire_grace_period=GRACE)
        self.conn = self.swift.connection()

    def make_server(self, **options):
        self.flags(group='swift_server', **options)
        server = plugin.load_plugin('precache.servers', 'swift', self.conf)
        server.start()
        self.addCleanup(server.stop)
        return server

    def objects(self):
        _headers, listing = self.conn.get_container(self.container,
                                                    full_listing=True)
        return sorted(item['name'] for item in listing)

    def agents(self, count, *origins):
        allowed = [self.swift.proxy_url + '/'] + list(origins)
        return self.start_agents(
            count, options={'agent': {'allowed_origins': allowed}})

    def cast(self, image_id, record, sources, agent=None):
        meta = self.sign(meta_mod.build(record, sources, epoch=base.EPOCH))
        agent_rpcapi.AgentAPI(self.conf).cache(
            rpc.get_context(), image_id, meta,
            host=agent.host if agent else None)

    def record(self, image_id):
        lister = plugin.load_plugin('precache.listers', 'directory',
                                    self.conf)
        return next(r for r in lister.list() if r.id == image_id)

    def test_agents_land_through_tempurls(self):
        agents = self.agents(2)
        qcow2, raw = test_distribution.make_qcow2(
            self.images_dir, IMAGE_ID, data_mib=3, virtual_mib=8)
        # 1 MiB segments: the artifact is a Static Large Object.
        server = self.make_server(segment_size=1)
        record = self.record(IMAGE_ID)

        source, = server.serve(record, qcow2)

        self.assertEqual('swift', source['method'])
        self.assertTrue(source['url'].startswith(self.swift.proxy_url))
        self.assertIn('temp_url_sig=', source['url'])
        names = self.objects()
        manifest = '%s/%s' % (IMAGE_ID, os.path.basename(
            server.http.artifact_path(record)))
        segments = [n for n in names if n.startswith(manifest + '.seg/')]
        self.assertGreaterEqual(len(segments), 2)
        self.assertEqual(sorted([manifest] + segments), names)
        self.assertEqual('True', self.conn.head_object(
            self.container, manifest).get('x-static-large-object'))
        # Served again: nothing uploaded again, the same URL.
        self.assertEqual([source], server.serve(record, qcow2))
        self.cast(IMAGE_ID, record, [source])
        for agent in agents:
            report = self.endpoint.report_for(agent.host, IMAGE_ID)
            self.assertEqual('cached', report['status'], report)
            self.assertEqual('swift', report['source'], report)
            self.assertLanded(agent, IMAGE_ID, raw)
        # Without the signature, Swift refuses the object.
        self.assertEqual(401, self._status(
            tempurl.without_signature(source['url'])))

    @staticmethod
    def _status(url):
        return requests.get(url, timeout=30).status_code

    def test_unlisted_image_is_removed_after_the_grace_period(self):
        kept_id = '6e3d8b2f-4c5a-4b7f-8d9e-8f7a6b5c4d3e'
        qcow2, _raw = test_distribution.make_qcow2(
            self.images_dir, IMAGE_ID, data_mib=1, virtual_mib=4)
        test_distribution.make_qcow2(self.images_dir, kept_id, data_mib=1,
                                     virtual_mib=4)
        now = timeutils.utcnow()
        clock = self.useFixture(utils_fixture.TimeFixture(now))
        pipeline = distributor.fanout_pipeline(
            self.conf, self.tempdir, _NoCasts())
        pipeline.start()
        self.addCleanup(pipeline.stop)
        outcomes = pipeline.run(rpc.get_context())
        self.assertEqual([None, None], [o.error for o in outcomes])
        self.assertEqual({IMAGE_ID, kept_id},
                         {n.split('/')[0] for n in self.objects()})
        www = self.conf.http_server.document_root
        self.assertTrue(os.path.isdir(os.path.join(www, IMAGE_ID)))

        os.unlink(qcow2)
        pipeline.run(rpc.get_context())
        clock.advance_time_delta(datetime.timedelta(seconds=GRACE - 5))
        pipeline.run(rpc.get_context())
        # Within the grace period: still there.
        self.assertEqual({IMAGE_ID, kept_id},
                         {n.split('/')[0] for n in self.objects()})

        clock.advance_time_delta(datetime.timedelta(seconds=10))
        pipeline.run(rpc.get_context())
        self.assertEqual({kept_id}, {n.split('/')[0] for n in self.objects()})
        self.assertFalse(os.path.exists(os.path.join(www, IMAGE_ID)))
        self.assertTrue(os.path.isdir(os.path.join(www, kept_id)))

    def test_changed_image_expires_the_older_objects(self):
        server = self.make_server()
        qcow2, _raw = test_distribution.make_qcow2(
            self.images_dir, IMAGE_ID, data_mib=1, virtual_mib=4)
        old, = server.serve(self.record(IMAGE_ID), qcow2)
        old_name = tempurl.without_signature(old['url']).split(
            self.container + '/', 1)[1]
        qcow2, _raw = test_distribution.make_qcow2(
            self.images_dir, IMAGE_ID, data_mib=2, virtual_mib=4)

        new, = server.serve(self.record(IMAGE_ID), qcow2)

        self.assertNotEqual(old['url'], new['url'])
        self.assertEqual(2, len(self.objects()))
        # Still fetchable for the grace period, then deleted by Swift.
        headers = self.conn.head_object(self.container, old_name)
        delete_at = int(headers['x-delete-at'])
        self.assertLessEqual(abs(delete_at - time.time() - GRACE), 60)
        self.assertEqual(200, self._status(old['url']))
        new_name = tempurl.without_signature(new['url']).split(
            self.container + '/', 1)[1]
        self.assertNotIn('x-delete-at',
                         self.conn.head_object(self.container, new_name))
        self.assertEqual(200, self._status(new['url']))

    def test_expired_tempurl_falls_back_to_http(self):
        qcow2, raw = test_distribution.make_qcow2(
            self.images_dir, IMAGE_ID, data_mib=2, virtual_mib=8)
        server = self.make_server(http_fallback=True)
        agent, = self.agents(1, server.http.base_url + '/')
        record = self.record(IMAGE_ID)
        swift_source, http_source = server.serve(record, qcow2)
        self.assertEqual('http', http_source['method'])
        storage_url = swift_source['url'].split('/' + self.container)[0]
        expired = tempurl.sign(
            storage_url, self.container,
            '%s/%s' % (IMAGE_ID, os.path.basename(
                server.http.artifact_path(record))),
            'precache-test-key', int(time.time()) - 1)
        self.assertEqual(401, self._status(expired))

        self.cast(IMAGE_ID, record,
                  [dict(swift_source, url=expired), http_source], agent)

        report = self.endpoint.report_for(agent.host, IMAGE_ID)
        self.assertEqual('cached', report['status'], report)
        self.assertEqual('http', report['source'], report)
        self.assertLanded(agent, IMAGE_ID, raw)
        with open(agent.log_file) as f:
            self.assertIn('401', f.read())


class _NoCasts(object):
    """An agent API for a pipeline whose casts no agent receives."""

    def cache(self, context, image_id, meta, host=None):
        pass
