"""The piece-level BitTorrent model of tools/bench/piece_model.py."""

import numpy as np

import piece_model as pm
from precache.tests import base

MBIT = 1e6
MB = 1e6
KIB = 1024


def _swarm(hosts=8, host_bps=8 * MBIT, origin_bps=8 * MBIT, size=2 * MB,
           piece=64 * KIB, **kwargs):
    return pm.Swarm(hosts, host_bps, origin_bps, size, piece, **kwargs)


class SwarmTest(base.TestCase):

    def test_pieces_and_the_short_last_one(self):
        s = _swarm(size=100 * KIB, piece=64 * KIB)
        self.assertEqual(2, s.pieces)
        self.assertEqual([64 * KIB * 8, 36 * KIB * 8], list(s.piece_bits()))

    def test_bad_sizes_and_racks_without_a_rate_are_refused(self):
        self.assertRaises(ValueError, _swarm, hosts=0)
        self.assertRaises(ValueError, _swarm, piece=0)
        self.assertRaises(ValueError, _swarm, rack_hosts=4)


class SimulateTest(base.TestCase):

    def test_one_host_gets_everything_through_the_origin(self):
        s = _swarm(hosts=1)
        result = pm.simulate(s)
        through_origin = s.artifact_bytes * 8 / (s.origin_bps * pm.GOODPUT)
        self.assertAlmostEqual(through_origin, result.last,
                               delta=0.05 * through_origin)
        self.assertAlmostEqual(1.0, result.origin_copies)

    def test_every_piece_leaves_the_origin_once(self):
        result = pm.simulate(_swarm(hosts=12))
        self.assertAlmostEqual(1.0, result.origin_copies)
        self.assertEqual(12, result.done.size)
        self.assertFalse(np.isnan(result.done).any())

    def test_a_swarm_is_near_the_bound_and_never_below_it(self):
        # 244 pieces: the last ones' trip through the swarm is short
        # against the whole.
        s = _swarm(hosts=16, size=16 * MB)
        result = pm.simulate(s)
        self.assertGreater(result.done[0], s.bound)
        self.assertLess(result.last, 1.3 * s.bound)

    def test_a_slow_origin_sets_the_pace(self):
        s = _swarm(hosts=8, origin_bps=2 * MBIT)
        through_origin = s.artifact_bytes * 8 / s.origin_bps
        self.assertGreater(pm.simulate(s).last, through_origin)

    def test_queues_slow_the_swarm(self):
        fast = pm.simulate(_swarm(hosts=16)).last
        slow = pm.simulate(_swarm(hosts=16, queue_frames=20)).last
        self.assertGreater(slow, fast * 1.05)

    def test_an_oversubscribed_rack_uplink_slows_the_swarm(self):
        flat = pm.simulate(_swarm(hosts=16)).last
        racks = pm.simulate(_swarm(hosts=16, rack_hosts=4,
                                   rack_bps=2 * MBIT)).last
        self.assertGreater(racks, flat * 1.2)

    def test_the_step_does_not_change_the_answer(self):
        s = _swarm(hosts=16)
        coarse = pm.simulate(s).last
        fine = pm.simulate(s, dt=s.piece_bytes * 8 / s.host_bps / 8).last
        self.assertAlmostEqual(fine, coarse, delta=0.05 * fine)

    def test_a_swarm_larger_than_the_connections(self):
        s = _swarm(hosts=60, connections=10)
        result = pm.simulate(s)
        self.assertEqual(60, result.done.size)
        self.assertGreater(result.done[0], s.bound)

    def test_it_gives_up_after_the_time_limit(self):
        s = _swarm(hosts=4)
        self.assertRaises(RuntimeError, pm.simulate, s, max_seconds=1.0)


class PartsTest(base.TestCase):

    def test_a_full_mesh_when_the_swarm_is_small(self):
        dst, src = pm._connections(5, 200, np.random.default_rng(0))
        self.assertEqual(20, dst.size)
        self.assertFalse((dst == src).any())

    def test_random_connections_go_both_ways(self):
        dst, src = pm._connections(200, 20, np.random.default_rng(0))
        self.assertFalse((dst == src).any())
        pairs = set(zip(dst.tolist(), src.tolist()))
        self.assertEqual(len(pairs), dst.size)
        self.assertTrue(all((b, a) in pairs for a, b in pairs))
        self.assertAlmostEqual(20, dst.size / 200, delta=2)

    def test_bands_give_libtorrents_sort_weights(self):
        weights = pm._priorities(3, 8, np.random.default_rng(0))
        # (8 - priority) * pieces for priorities 6, 5, 4, 3: 2 pieces each.
        for row in weights:
            self.assertEqual([16, 16, 24, 24, 32, 32, 40, 40],
                             sorted(row.tolist()))

    def test_links_are_shared_max_min_fairly(self):
        s = _swarm(hosts=3, host_bps=10.0, origin_bps=10.0, goodput=1.0)
        links = pm._Links(s)
        # Host 0 uploads to 1 and 2; host 2's downlink also carries a
        # first copy: 2 gets 5 from the origin and 5 from host 0, and
        # host 0's other flow takes the rest of its uplink.
        flows = np.concatenate([
            links.of_swarm(np.array([1, 2]), np.array([0, 0])),
            links.of_origin(np.array([2]))])
        self.assertEqual([5.0, 5.0, 5.0], links.share(flows).tolist())
        flows = links.of_swarm(np.array([1, 2]), np.array([0, 0]))
        self.assertEqual([5.0, 5.0], links.share(flows).tolist())

    def test_bits_set_clear_and_test(self):
        bits = pm._Bits(2, 130)
        bits.set(np.array([0, 1, 1]), np.array([3, 64, 129]))
        self.assertEqual([True, True, True, False], bits.has(
            np.array([0, 1, 1, 0]), np.array([3, 64, 129, 4])).tolist())
        bits.clear(np.array([1]), np.array([64]))
        self.assertFalse(bits.has(np.array([1]), np.array([64]))[0])
        row = pm.unpack(bits.words[1:2], 130)[0]
        self.assertEqual([129], np.nonzero(row)[0].tolist())
