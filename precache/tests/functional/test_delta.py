"""Delta distribution on real parts: agents, RabbitMQ, HTTP, qemu-img.

Two versions of a qcow2 image (a synthetic pair: scattered block
changes and an insertion that shifts the rest). The service side (in
this process) serves both with a real ImageServer and the
DeltaPublisher; real ``precache-agent`` processes with Nova-style stores
(raw conversion on) land v1, then v2: from the delta where they hold
v1, in full where they do not or where their copy of v1 changed.

Through each data plane: the ``http`` server; the ``bittorrent`` server
(the delta's own torrent, swarmed by real libtorrent sessions in the
agents, with the delta's http URL as web seed and fallback); the
``swift`` server (the delta object beside the full one in a real Swift,
fetched by TempURL, deleted with the image's objects).
"""

import os
import re
import subprocess

from precache.agent import rpcapi as agent_rpcapi
from precache.common import plugin
from precache.common import rpc
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import states
from precache.service import delta
from precache.tests.fixtures import image_pairs
from precache.tests.functional import base
from precache.tests.functional import test_bittorrent
from precache.tests.functional import test_distribution
from precache.tests.functional import test_swift_image_server

MiB = 1024 * 1024
V1_ID = '1d000000-0000-4000-8000-000000000001'
V2_ID = '1d000000-0000-4000-8000-000000000002'


class ReportedHolders(object):
    """The publisher's view of the inventories: the agents' reports."""

    def __init__(self, endpoint, records):
        self.endpoint = endpoint
        self.records = records

    def list_images(self):
        return [{'id': r.id, 'name': r.name} for r in self.records]

    def image_hosts(self, image_id):
        return {r['host']: {'status': r['status']}
                for r in self.endpoint.reports
                if r['image_id'] == image_id and
                r['status'] in states.PRESENT}


def _write_qcow2(directory, image_id, data):
    raw = os.path.join(directory, '.%s.raw' % image_id)
    with open(raw, 'wb') as f:
        # Whole sectors, as qemu-img gives the raw form of the qcow2.
        f.write(data + bytes(-len(data) % 512))
    path = os.path.join(directory, image_id)
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True)
    return path, raw


class DeltaTestCase(test_distribution.DistributionTestCase):
    """v1 and v2 in the images directory, served with deltas."""

    #: The ImageServer, its full sources' methods, and the transports of
    #: its delta sources.
    server_name = 'http'
    full_methods = ['http']
    delta_transports = ['http']

    def agent_options(self):
        """Options of every agent (``start_agents``)."""
        return None

    def start_agents(self, count, prefix='agent', options=None):
        return super().start_agents(count, prefix,
                                    options or self.agent_options())

    def make_server(self):
        server = plugin.load_plugin('precache.servers', self.server_name,
                                    self.conf)
        server.start()
        self.addCleanup(server.stop)
        return server

    def setUp(self):
        super().setUp()
        self.flags(group='delta', enabled=True, average_chunk_size=16384,
                   index_dir=os.path.join(self.tempdir, 'chunks'))
        v1, v2 = image_pairs.synthetic_pair(24 * MiB, changed_blocks=16)
        self.v1_qcow2, self.v1_raw = _write_qcow2(self.images_dir, V1_ID, v1)
        self.v2_qcow2, self.v2_raw = _write_qcow2(self.images_dir, V2_ID, v2)
        self.server = self.make_server()
        lister = plugin.load_plugin('precache.listers', 'directory',
                                    self.conf)
        records = {r.id: r for r in lister.list()}
        self.v1, self.v2 = records[V1_ID], records[V2_ID]
        self.v1.name = self.v2.name = 'golden'
        self.publisher = delta.DeltaPublisher(
            self.conf, ReportedHolders(self.endpoint, [self.v1, self.v2]),
            self.server)
        self.agent_api = agent_rpcapi.AgentAPI(self.conf)

    def serve(self, record, path):
        sources = self.server.serve(record, path)
        return self.publisher.add_sources(record, path, sources)

    def cast(self, record, sources, agents):
        meta = self.sign(meta_mod.build(record, sources, epoch=base.EPOCH))
        for agent in agents:
            self.agent_api.cache(rpc.get_context(), record.id, meta,
                                 host=agent.host)

    def land_v1(self, agents):
        sources = self.serve(self.v1, self.v1_qcow2)
        self.assertEqual(self.full_methods, [s['method'] for s in sources])
        self.cast(self.v1, sources, agents)
        for agent in agents:
            report = self.endpoint.report_for(agent.host, V1_ID)
            self.assertEqual('cached', report['status'], report)

    def serve_v2(self):
        sources = self.serve(self.v2, self.v2_qcow2)
        deltas = len(self.delta_transports)
        self.assertEqual(['delta'] * deltas + self.full_methods,
                         [s['method'] for s in sources])
        self.assertEqual(self.delta_transports,
                         [s['transport'] for s in sources[:deltas]])
        for source in sources[:deltas]:
            self.assertEqual(V1_ID, source['base']['id'])
        return sources

    @staticmethod
    def full(sources):
        """The first source of the full artifact."""
        return next(s for s in sources if s['method'] != 'delta')

    def assertLandedV2(self, agent, method, size):
        report = self.endpoint.report_for(agent.host, V2_ID)
        self.assertEqual('cached', report['status'], report)
        self.assertEqual(method, report['source'], agent.log_tail())
        self.assertEqual(size, report['bytes'])
        path = self.assertLanded(agent, V2_ID, self.v2_raw)
        # qemu-img agrees: the guest sees the same disk as Glance's image.
        subprocess.run(['qemu-img', 'compare', '-f', 'raw', '-F', 'qcow2',
                        path, self.v2_qcow2], check=True,
                       capture_output=True)

    def base_file(self, agent):
        return os.path.join(agent.base_path, image_mod.nova_cache_name(V1_ID))


class DeltaDistributionTest(DeltaTestCase):

    def test_v2_from_delta_where_v1_is_held_in_full_elsewhere(self):
        holders = self.start_agents(2, prefix='holder')
        fresh, = self.start_agents(1, prefix='fresh')
        self.land_v1(holders)
        sources = self.serve_v2()
        delta_source, full_source = sources[0], self.full(sources)
        # The delta is a fraction of the full artifact.
        self.assertLess(delta_source['size'], full_source['size'] / 4)

        self.cast(self.v2, sources, holders + [fresh])

        for agent in holders:
            self.assertLandedV2(agent, 'delta', delta_source['size'])
            self.assertDeltaTravelled(agent, delta_source)
        self.assertLandedV2(fresh, full_source['method'],
                            full_source['size'])
        self.holders = holders
        return sources

    def assertDeltaTravelled(self, agent, source):
        """The agent's log names the delta's transport as its source."""
        self.assertIn('from delta %s ' % source['transport'],
                      agent.log_tail(400))

    def test_changed_or_deleted_base_falls_back_to_the_full_artifact(self):
        corrupted, deleted = self.start_agents(2)
        self.land_v1([corrupted, deleted])
        sources = self.serve_v2()
        # Between the index (made by the service) and the assembly.
        with open(self.base_file(corrupted), 'r+b') as f:
            for offset in range(0, os.path.getsize(f.name), MiB):
                f.seek(offset)
                f.write(b'\xde\xad\xbe\xef')
        os.unlink(self.base_file(deleted))

        self.cast(self.v2, sources, [corrupted, deleted])

        full = self.full(sources)
        for agent in (corrupted, deleted):
            self.assertLandedV2(agent, full['method'], full['size'])
        self.assertIn('differ from the base the delta was made from',
                      corrupted.log_tail(400))
        self.assertIn('does not hold base image %s' % V1_ID,
                      deleted.log_tail(400))


class DeltaSwarmTest(DeltaDistributionTest):
    """The delta's own torrent, swarmed by the agents' libtorrent."""

    server_name = 'bittorrent'
    full_methods = ['bittorrent', 'http']
    delta_transports = ['bittorrent', 'http']

    def configure_service(self):
        super().configure_service()
        test_bittorrent.configure_server(self, piece_size_kb=64)

    def agent_options(self):
        # Web seeds never: the delta's bytes come from the swarm.
        return {'bittorrent_source': {
            'listen_host': '127.0.0.1', 'listen_port': 0, 'seed_time': 60,
            'web_seed_delay': -1, 'stall_timeout': 30}}

    def assertDeltaTravelled(self, agent, source):
        super().assertDeltaTravelled(agent, source)
        self.assertIn('torrent %s downloaded' % source['info_hash'],
                      agent.log_tail(400))

    def test_v2_from_delta_where_v1_is_held_in_full_elsewhere(self):
        sources = super(
        ).test_v2_from_delta_where_v1_is_held_in_full_elsewhere()
        # The tracker handed out the delta's first copies, as for a full
        # artifact: its pieces left the origin's web server for agents.
        first_copies = re.compile(r'Torrent %s: (\d+) first cop(y|ies) '
                                  r'fetched' % sources[0]['info_hash'])
        fetched = 0
        for agent in self.holders:
            with open(agent.log_file) as f:
                fetched += sum(int(found.group(1)) for found in
                               first_copies.finditer(f.read()))
        self.assertGreater(fetched, 0)


class DeltaSwiftTest(test_swift_image_server.SwiftTestMixin,
                     DeltaDistributionTest):
    """The delta object beside the full one in a real Swift."""

    server_name = 'swift'
    full_methods = ['swift']
    delta_transports = ['swift']

    def configure_service(self):
        super().configure_service()
        self.configure_swift_server('delta')

    def agent_options(self):
        return {'agent': {'allowed_origins': [self.swift.proxy_url + '/']}}

    def objects(self):
        conn = self.swift.connection()
        try:
            _headers, listing = conn.get_container(self.container,
                                                   full_listing=True)
        finally:
            conn.close()
        return sorted(item['name'] for item in listing)

    def test_v2_from_delta_where_v1_is_held_in_full_elsewhere(self):
        sources = super(
        ).test_v2_from_delta_where_v1_is_held_in_full_elsewhere()
        name = sources[0]['url'].split('?')[0].rsplit('/', 1)[1]
        self.assertIn('%s/%s' % (V2_ID, name), self.objects())
        # Served again (every run): in place, not uploaded again.
        self.assertEqual(sources, self.serve_v2())
        # By a restarted service, which looks at the image's objects
        # again: the delta belongs to the version served and stays.
        self.server = self.make_server()
        self.server.serve(self.v2, self.v2_qcow2)
        conn = self.swift.connection()
        self.addCleanup(conn.close)
        headers = conn.head_object(self.container,
                                   '%s/%s' % (V2_ID, name))
        self.assertNotIn('x-delete-at', headers)
        # Retired with the image's other objects.
        self.server.retire(V2_ID)
        self.assertEqual([], [o for o in self.objects()
                              if o.startswith(V2_ID + '/')])
