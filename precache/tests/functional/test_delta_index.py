"""Agents with a chunk index of their store, on real parts.

As in :mod:`test_delta` (RabbitMQ, the http server, real
``precache-agent`` processes with Nova-style stores, qemu-img), with
``[chunk_index] enabled``: the agent indexes what lands, in its state
directory, and completes a delta from any indexed image when its base
changed. Told no ``average_chunk_size``, it cuts its store as the deltas
say they were cut.
"""

import os
import re
import time

from precache.common import plugin
from precache.objects import image as image_mod
from precache.tests.fixtures import image_pairs
from precache.tests.functional import test_delta

MiB = test_delta.MiB
V1_ID = test_delta.V1_ID
V2_ID = test_delta.V2_ID
#: Another image with v1's bytes (under another name: never the base).
COPY_ID = '1d000000-0000-4000-8000-000000000003'


class AgentChunkIndexTest(test_delta.DeltaTestCase):
    """Agents that keep a chunk index of their store."""

    def setUp(self):
        super().setUp()
        v1 = image_pairs.synthetic_pair(24 * MiB, changed_blocks=16)[0]
        self.copy_qcow2, _raw = test_delta._write_qcow2(self.images_dir,
                                                        COPY_ID, v1)
        lister = plugin.load_plugin('precache.listers', 'directory',
                                    self.conf)
        self.copy = {r.id: r for r in lister.list()}[COPY_ID]
        self.copy.name = 'another'

    def start_indexing_agents(self, count):
        return self.start_agents(count, prefix='indexing', options={
            'chunk_index': {'enabled': 'true',
                            'average_chunk_size': 16384}})

    def wait_indexed(self, agent, *image_ids, average=None):
        """Wait until the images are indexed (cut with ``average``)."""
        for image_id in image_ids:
            path = os.path.join(agent.base_path,
                                image_mod.nova_cache_name(image_id))
            self.wait_for_log(agent, re.escape(
                'Chunk index: indexed %s' % path) + (
                    r' \(\d+ chunks, average size %d\)' % average
                    if average else ''))

    def wait_for_log(self, agent, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, agent.log_tail(100000)):
                return
            time.sleep(0.2)
        self.fail('%s not in the log of %s:\n%s'
                  % (pattern, agent.host, agent.log_tail()))

    def assertRelocated(self, agent):
        """The agent found some of v2's bytes through its index."""
        self.assertRegex(agent.log_tail(400),
                         r'Image %s: \d+ bytes taken from local files '
                         r'\(base %s\), [1-9]\d* of them found elsewhere'
                         % (V2_ID, V1_ID))

    def corrupt_base(self, agent):
        with open(self.base_file(agent), 'r+b') as f:
            for offset in range(0, os.path.getsize(f.name), MiB):
                f.seek(offset)
                f.write(b'\xde\xad\xbe\xef')

    def test_changed_base_completed_from_another_indexed_image(self):
        agent, = self.start_indexing_agents(1)
        self.land_v1([agent])
        sources = self.serve(self.copy, self.copy_qcow2)
        self.cast(self.copy, sources, [agent])
        self.assertEqual('cached', self.endpoint.report_for(
            agent.host, COPY_ID)['status'])
        self.wait_indexed(agent, V1_ID, COPY_ID)
        # The index is kept in the agent's state directory, not in _base.
        self.assertEqual(
            sorted(image_mod.nova_cache_name(i) for i in (V1_ID, COPY_ID)),
            sorted(os.listdir(agent.base_path)))
        self.assertTrue(os.path.exists(os.path.join(
            agent.base_dir, 'state', 'chunk-index', 'chunks.sqlite')))
        sources = self.serve_v2()
        self.corrupt_base(agent)

        self.cast(self.v2, sources, [agent])

        self.assertLandedV2(agent, 'delta', sources[0]['size'])
        self.assertEqual(V1_ID, self.endpoint.report_for(
            agent.host, V2_ID)['delta_base'])
        self.assertRelocated(agent)

    def test_index_follows_the_chunking_the_deltas_name(self):
        # The service cuts with 8 KiB; the agent is not told.
        self.flags(group='delta', average_chunk_size=8192)
        agent, = self.start_agents(1, prefix='following', options={
            'chunk_index': {'enabled': 'true'}})
        self.land_v1([agent])
        self.wait_indexed(agent, V1_ID)
        # A first delta (the copy of v1, named like it: against v1)
        # names the service's chunking.
        self.copy.name = 'golden'
        sources = self.serve(self.copy, self.copy_qcow2)
        self.assertEqual({'average': 8192}, sources[0]['chunking'])
        self.cast(self.copy, sources, [agent])
        self.assertEqual('delta', self.endpoint.report_for(
            agent.host, COPY_ID)['source'])
        self.wait_for_log(agent, re.escape(
            'Chunk index: deltas are now cut with an average chunk size of '
            '8192 bytes (was 16384)'))
        self.wait_indexed(agent, V1_ID, COPY_ID, average=8192)
        sources = self.serve_v2()
        self.corrupt_base(agent)

        self.cast(self.v2, sources, [agent])

        self.assertLandedV2(agent, 'delta', sources[0]['size'])
        self.assertRelocated(agent)

    def test_deleted_base_still_falls_back_to_the_full_artifact(self):
        agent, = self.start_indexing_agents(1)
        self.land_v1([agent])
        self.wait_indexed(agent, V1_ID)
        sources = self.serve_v2()
        os.unlink(self.base_file(agent))

        self.cast(self.v2, sources, [agent])

        self.assertLandedV2(agent, 'http', sources[1]['size'])
        self.assertIsNone(self.endpoint.report_for(
            agent.host, V2_ID).get('delta_base'))
