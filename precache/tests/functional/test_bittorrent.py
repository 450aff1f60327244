"""A real swarm: the bittorrent server seeds, agent processes swarm.

The service's pipeline runs in this process with the ``bittorrent``
server (its ``http`` web server and its seeding libtorrent session on
127.0.0.1); real ``precache-agent`` processes, each with a libtorrent
session of its own on a free loopback port, receive the fanout over a
real RabbitMQ, find each other through the service's tracker, take the
first copies of the pieces the tracker hands them from the origin's web
server (or, without first copies, download from the seed), trade the
rest, land the image and report back.
"""

import os
import re
import socket
import time

from oslo_log import log as logging
from testtools import content

from precache.common import plugin
from precache.common import rpc
from precache.common import verify
from precache.objects import image as image_mod
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_distribution

LOG = logging.getLogger(__name__)

MiB = 1024 * 1024
AGENTS = 4

_TRANSFER = re.compile(r'torrent \w+ (downloaded|abandoned); about (\d+) '
                       r'bytes from the listed peers, (\d+) from other '
                       r'peers, (\d+) from web seeds, (\d+) from '
                       r'connections closed unsampled')


def configure_server(test, **options):
    """Set the ``bittorrent`` server's options: 127.0.0.1, free ports."""
    server_cls = plugin.load_plugin_class('precache.servers', 'bittorrent')
    test.register_plugin_opts(server_cls)
    test.flags(group=server_cls.get_config_group(), listen_host='127.0.0.1',
               listen_port=0, tracker_port=0, **options)


class SwarmTestCase(test_distribution.DistributionTestCase):
    """The pipeline serves with ``bittorrent``; agents run BitTorrent."""

    #: Bytes/s the service's seed uploads, so that agents must trade.
    seed_upload_rate = 0

    def configure_service(self):
        super().configure_service()
        configure_server(self, piece_size_kb=1024,
                         upload_rate_limit=self.seed_upload_rate)
        self.flags(group='service', server='bittorrent')

    def start_swarm_agents(self, **source_options):
        """Start :data:`AGENTS` agents, each with its own download_dir."""
        agents = []
        for number in range(1, AGENTS + 1):
            host = 'peer-%d' % number
            options = dict(
                download_dir=os.path.join(self.tempdir, host, 'torrents'),
                listen_host='127.0.0.1', listen_port=0, seed_time=120,
                **source_options)
            agents.append(self.useFixture(control_plane.AgentProcessFixture(
                self.messaging, host, self.tempdir,
                options={'bittorrent_source': options})))
        for agent in agents:
            self.endpoint.wait_for_heartbeat(agent.host)
        return agents

    def transfers(self, agent):
        """Return what each of its downloads received, from its log.

        ``(outcome, bytes from the seed, from other agents, from web
        seeds, unattributed)`` per download (see
        :class:`precache.torrent.progress.Transfer`).
        """
        with open(agent.log_file) as f:
            found = _TRANSFER.findall(f.read())
        return [(outcome,) + tuple(int(n) for n in numbers)
                for outcome, *numbers in found]

    def assertLandedVerified(self, agent, image_id, raw):
        path = os.path.join(agent.base_path,
                            image_mod.nova_cache_name(image_id))
        self.assertTrue(os.path.exists(path), agent.log_tail())
        self.assertEqual(verify.file_digest(raw), verify.file_digest(path))
        self.assertNoLeftovers(agent)

    def assertDownloadsRemovedOnStop(self, agent):
        download_dir = os.path.join(agent.base_dir, 'torrents')
        agent.stop()
        self.assertEqual([], os.listdir(download_dir), agent.log_tail())


class SwarmTest(SwarmTestCase):

    # 2 MiB/s: alone, the seed would need about 6 s per agent.
    seed_upload_rate = 2 * MiB

    def test_agents_land_the_image_from_the_swarm(self):
        # Web seeds never: every byte comes from the seed or the peers.
        agents = self.start_swarm_agents(web_seed_delay=-1,
                                         stall_timeout=30)
        image_id = '3c1e5b7a-9d2f-4e61-8a0b-b70000000001'
        _qcow2, raw = test_distribution.make_qcow2(
            self.images_dir, image_id, data_mib=24, virtual_mib=48)
        pipeline = self.start_pipeline()
        started = time.monotonic()

        outcome, = pipeline.run(rpc.get_context())

        self.assertTrue(outcome.distributed, outcome.error)
        sources = outcome.meta['sources']
        self.assertEqual(['bittorrent', 'http'],
                         [s['method'] for s in sources])
        size = sources[0]['size']
        for agent in agents:
            report = self.endpoint.report_for(agent.host, image_id)
            self.assertEqual('cached', report['status'], report)
            self.assertEqual('bittorrent', report['source'], report)
            self.assertLandedVerified(agent, image_id, raw)
        elapsed = time.monotonic() - started
        seed = pipeline.server.seeder.handle(image_id).status()
        from_agents = [self.transfers(a)[-1][2] for a in agents]
        summary = ('%d agents landed %d artifact bytes in %.1f s; the '
                   'seed uploaded %d bytes (%.2f copies); bytes from '
                   'other agents, per agent: %s' % (
                       len(agents), size, elapsed,
                       seed.total_payload_upload,
                       seed.total_payload_upload / size, from_agents))
        LOG.info("%s", summary)
        self.addDetailUniqueName('swarm', content.text_content(summary))
        # First copies: every piece left the origin through its web
        # server and the rest travelled between the agents (all but one
        # copy, less what the log's samples miss). The seed is only the
        # fallback: on a loaded machine an agent without progress for 5 s
        # after its first copies connects it, so it may send a little,
        # never the whole artifact.
        self.assertLess(seed.total_payload_upload, size, summary)
        key = sources[0]['info_hash']
        self.assertEqual('done', pipeline.server.tracker.swarms
                         .take_first_copy(bytes.fromhex(key)), summary)
        self.assertGreater(sum(from_agents), (len(agents) - 2) * size,
                           summary)
        # Every agent announced itself to the service's tracker.
        announced = pipeline.server.tracker.swarms.peers(key)
        self.assertGreaterEqual(len(announced), len(agents), announced)
        # A stopped agent removes its torrents' data.
        self.assertDownloadsRemovedOnStop(agents[0])


class SeedGoneTest(SwarmTestCase):

    # 8 MiB/s: one copy of the 64 MiB artifact takes the seed 8 s.
    seed_upload_rate = 8 * MiB

    def test_agents_finish_after_the_seed_stops(self):
        # The web seed joins only after 8 s without progress: an agent
        # slow to find its peers on a loaded machine must not fetch the
        # whole artifact over HTTP before the seed is gone.
        # Without first copies: the agents download from the seed.
        agents = self.start_swarm_agents(web_seed_delay=8, stall_timeout=20,
                                         upload_rate_limit=16 * MiB,
                                         first_copies=False)
        image_id = '3c1e5b7a-9d2f-4e61-8a0b-b70000000002'
        _qcow2, raw = test_distribution.make_qcow2(
            self.images_dir, image_id, data_mib=128, virtual_mib=160)
        pipeline = self.start_pipeline()

        outcome, = pipeline.run(rpc.get_context())

        self.assertTrue(outcome.distributed, outcome.error)
        size = outcome.meta['sources'][0]['size']
        self.assertGreater(size, 60 * MiB)
        # The seed stops once it sent half of the artifact.
        seeder = pipeline.server.seeder
        handle = seeder.handle(image_id)
        deadline = time.monotonic() + 30
        while handle.status().total_payload_upload < size // 2:
            self.assertLess(time.monotonic(), deadline,
                            'the seed did not upload half the artifact')
            time.sleep(0.1)
        sent = handle.status().total_payload_upload
        seeder.stop()
        pipeline.server.seeder = None
        # Gone: its port refuses connections.
        self.assertRaises(ConnectionRefusedError, socket.create_connection,
                          ('127.0.0.1', seeder.port), 5)
        for agent in agents:
            self.assertEqual(
                0, self.endpoint.count_reports(agent.host, image_id),
                'an agent finished before the seed stopped')

        paths = []
        for agent in agents:
            report = self.endpoint.report_for(agent.host, image_id)
            self.assertEqual('cached', report['status'], report)
            self.assertIn(report['source'], ('bittorrent', 'http'))
            self.assertLandedVerified(agent, image_id, raw)
            transfers = self.transfers(agent)
            paths.append('%s via %s (%s)' % (
                agent.host, report['source'], ', '.join(
                    '%s: %d B from the seed, %d B from other agents, %d B '
                    'from web seeds, %d B unattributed' % t
                    for t in transfers)))
        summary = ('the seed stopped after sending %d of %d bytes; %s'
                   % (sent, size, '; '.join(paths)))
        LOG.info("%s", summary)
        self.addDetailUniqueName('paths', content.text_content(summary))
        for agent in agents:
            self.assertDownloadsRemovedOnStop(agent)
