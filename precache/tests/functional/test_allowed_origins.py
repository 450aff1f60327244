"""``[agent] allowed_origins`` on a real agent: a signed cast is not enough.

A cast signed with the service's key (as one signed with a stolen key
would be) names an origin outside the agent's ``allowed_origins``: the
real ``precache-agent`` refuses that source without connecting to it
(the foreign origin counts its connections: none) and downloads from the
next, allowed source; with no allowed source, the request fails naming
the foreign host and nothing lands. libtorrent's own redirects are
checked too: a torrent whose (allowed) tracker and web seed redirect to
the foreign host makes no connection there. And the metas the service
builds for a swarm (web seed, tracker, inject_url, seed) pass agents
limited to the service's own origins.
"""

import hashlib
import http.server
import os
import threading

from oslo_config import cfg
import oslo_messaging as messaging

from precache.common import plugin
from precache.common import rpc
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.tests import base
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_bittorrent
from precache.tests.functional import test_distribution
from precache.tests.functional import test_hostile_casts
from precache.torrent import metainfo
from precache.torrent import session as session_mod

IMAGE_ID = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'
SIZE = 1024 * 1024


class AllowedOriginsTestCase(test_distribution.BrokerTestCase):
    """An agent limited to an origin; a foreign origin counting."""

    def setUp(self):
        super().setUp()
        self.data = os.urandom(SIZE)
        self.origin = self.serve('origin')
        self.foreign = self.serve('foreign')
        # Another name for the same loopback address: a host of its own.
        self.foreign_url = self.foreign.url.replace('127.0.0.1',
                                                    'localhost')
        self.endpoint = self.useFixture(
            control_plane.ServiceEndpointFixture(self.conf))
        self.agent = self.useFixture(control_plane.AgentProcessFixture(
            self.messaging, 'origins-target', self.tempdir,
            options=self.agent_options()))
        self.endpoint.wait_for_heartbeat(self.agent.host)
        transport = messaging.get_rpc_transport(cfg.CONF)
        self.addCleanup(transport.cleanup)
        target = messaging.Target(topic=self.messaging.agent_topic,
                                  version='1.0', server=self.agent.host)
        self.client = messaging.get_rpc_client(transport, target)

    def agent_options(self):
        return {'agent': {'allowed_origins': [self.origin.url]}}

    def serve(self, name):
        """Start an origin serving the image; it counts connections."""
        root = os.path.join(self.tempdir, name)
        os.makedirs(root)
        with open(os.path.join(root, IMAGE_ID), 'wb') as f:
            f.write(self.data)
        origin = test_hostile_casts.CountingOrigin(root)
        self.addCleanup(origin.stop)
        return origin

    def cast(self, meta):
        self.client.cast({}, 'cache', image_id=IMAGE_ID, meta=meta)

    def meta(self, *urls, first=()):
        record = image_mod.ImageRecord(
            id=IMAGE_ID, name='origins', disk_format='raw',
            size=len(self.data), os_hash_algo='sha512',
            os_hash_value=hashlib.sha512(self.data).hexdigest())
        return self.sign(meta_mod.build(
            record, list(first) +
            [{'method': 'http', 'url': url + IMAGE_ID,
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


class AllowedOriginsTest(AllowedOriginsTestCase):

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


class Redirector(object):
    """An HTTP server redirecting every GET to ``target`` + its path."""

    def __init__(self):
        redirector = self
        self.target = None
        self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                redirector.paths.append(self.path)
                self.send_response(302)
                self.send_header('Location', redirector.target +
                                 self.path.lstrip('/'))
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d/' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class TorrentRedirectsTest(AllowedOriginsTestCase):
    """libtorrent's tracker and web seed redirects stay within origins."""

    def setUp(self):
        self.redirector = Redirector()
        self.addCleanup(self.redirector.stop)
        super().setUp()
        self.redirector.target = self.foreign_url

    def agent_options(self):
        return {'agent': {'allowed_origins': [self.origin.url,
                                              self.redirector.url]},
                'bittorrent_source': {
                    'listen_host': '127.0.0.1', 'listen_port': 0,
                    'stall_timeout': 8, 'web_seed_delay': 0,
                    'first_copies': False}}

    def torrent_source(self):
        path = os.path.join(self.tempdir, 'origin', IMAGE_ID)
        torrent = metainfo.make_torrent(
            path, 256 * 1024,
            web_seeds=[self.redirector.url + 'seed/' + IMAGE_ID],
            trackers=[self.redirector.url + 'announce'])
        params = metainfo.load(metainfo.encode(torrent))
        return {'method': 'bittorrent', 'torrent': metainfo.encode(torrent),
                'info_hash': session_mod.info_hash(params.ti),
                'peers': [], 'compression': 'none', 'size': len(self.data)}

    def test_tracker_and_web_seed_redirects_are_not_followed(self):
        self.cast(self.meta(self.origin.url, first=[self.torrent_source()]))
        report = self.final_report()
        self.assertEqual('cached', report['status'], report)
        self.assertEqual('http', report['source'], report)
        self.assertTrue(self.landed())
        # libtorrent announced (through the agent's guard) and was
        # redirected; the redirect target was refused before connecting.
        self.assertTrue([p for p in self.redirector.paths
                         if p.startswith('/announce')],
                        self.redirector.paths)
        self.assertEqual(0, self.foreign.connections)
        # libtorrent's web seeds are not used behind the guard.
        self.assertEqual([], [p for p in self.redirector.paths
                              if p.startswith('/seed/')])
        with open(self.agent.log_file) as f:
            log = f.read()
        self.assertIn('Refused a request of libtorrent: a tracker '
                      'request\'s host localhost', log)


class SwarmOriginsTest(test_bittorrent.SwarmTestCase):
    """A service's bittorrent meta passes agents limited to its origins."""

    def configure_service(self):
        super().configure_service()
        self.ports = self.useFixture(base.ReservedPorts(
            ['web', 'seed', 'tracker'])).ports
        self.flags(group=plugin.load_plugin_class(
            'precache.servers', 'http').get_config_group(),
            bind_port=self.ports['web'])
        self.flags(group=plugin.load_plugin_class(
            'precache.servers', 'bittorrent').get_config_group(),
            listen_port=self.ports['seed'],
            tracker_port=self.ports['tracker'])

    def test_swarm_within_the_allowed_origins(self):
        agents = self.start_swarm_agents(web_seed_delay=-1,
                                         stall_timeout=30)
        allowed = ['http://127.0.0.1:%(web)d/' % self.ports,
                   'http://127.0.0.1:%(tracker)d/' % self.ports,
                   'bittorrent://127.0.0.1:%(seed)d/' % self.ports]
        for agent in agents:
            agent.stop()
            agent.set_options({'agent': {'allowed_origins': allowed}})
            agent.start()
        for agent in agents:
            self.endpoint.wait_for_heartbeat(agent.host)
        image_id = '3c1e5b7a-9d2f-4e61-8a0b-b70000000003'
        test_distribution.make_qcow2(self.images_dir, image_id,
                                     data_mib=8, virtual_mib=16)
        pipeline = self.start_pipeline()

        outcome, = pipeline.run(rpc.get_context())

        self.assertTrue(outcome.distributed, outcome.error)
        self.assertEqual('bittorrent', outcome.meta['sources'][0]['method'])
        for agent in agents:
            report = self.endpoint.report_for(agent.host, image_id)
            self.assertEqual('cached', report['status'], report)
            self.assertEqual('bittorrent', report['source'], report)
            with open(agent.log_file) as f:
                self.assertNotIn('is not in [agent] allowed_origins',
                                 f.read())
