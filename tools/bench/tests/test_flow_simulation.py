"""The flow model of tools/bench/flow_simulation.py."""

import flow_simulation as sim
from precache.tests import base

MB = 1e6
GBIT = 1e9


def _setup(hosts=100, proxies=4, origin_bps=GBIT, proxy_bps=GBIT):
    return sim.Setup('t', hosts, GBIT, origin_bps, proxies, proxy_bps,
                     100 * MB, 300 * MB, 4 * 2 ** 20)


class NetworkTimesTest(base.TestCase):

    def test_sequential_is_one_transfer_after_another(self):
        times, copies = sim.network_times('sequential', _setup())
        self.assertAlmostEqual(0.8, times[0])
        self.assertAlmostEqual(80.0, times[-1])
        self.assertEqual(100, copies)

    def test_parallel_shares_the_origin(self):
        times, _ = sim.network_times('parallel', _setup(origin_bps=10 * GBIT))
        # 10 Gbit/s over 100 hosts: 0.1 Gbit/s each.
        self.assertEqual([8.0] * 100, times)

    def test_parallel_is_capped_by_the_host_link(self):
        times, _ = sim.network_times('parallel', _setup(hosts=5,
                                                        origin_bps=10 * GBIT))
        self.assertEqual([0.8] * 5, times)

    def test_squid_hosts_share_their_proxy(self):
        s = _setup(hosts=100, proxies=4)
        loads = sim.proxy_loads(100, 4)
        self.assertEqual(100, sum(loads))
        times, copies = sim.network_times('squid', s)
        self.assertEqual(4, copies)
        self.assertAlmostEqual(0.8 * max(loads), times[-1])

    def test_bittorrent_approaches_the_host_bound(self):
        s = _setup(hosts=1000)
        times, _ = sim.network_times('bittorrent', s)
        self.assertGreater(times[-1], s.bound)
        self.assertLess(times[-1], 1.5 * s.bound)


class CalibrationTest(base.TestCase):

    def test_efficiency_and_landing_time_from_a_benchmark(self):
        size = 10 * MB
        summary = {
            'hosts': 4, 'proxies': 1, 'host_bps': 80e6, 'origin_bps': 80e6,
            'proxy_bps': 80e6, 'artifact_bytes': size, 'image_bytes': 40e6,
            'piece_size_kb': 1024, 'decompress_seconds': 0.1,
            'results': [
                # 1 s transfer + 1 s landing per host.
                {'strategy': 'sequential', 'hosts': 4, 'last': 8.0,
                 'times': [2.0, 4.0, 6.0, 8.0]},
                # the model says 4 s of network: efficiency 0.5.
                {'strategy': 'parallel', 'hosts': 4, 'last': 9.0,
                 'times': [9.0] * 4},
                {'strategy': 'bittorrent', 'skipped': 'not installed'}]}
        _s, efficiency, land, rate = sim.calibrate(summary)
        self.assertAlmostEqual(1.0, land)
        self.assertAlmostEqual(40e6, rate)
        self.assertAlmostEqual(1.0, efficiency['sequential'])
        self.assertAlmostEqual(0.5, efficiency['parallel'])
        self.assertNotIn('bittorrent', efficiency)

    def test_landing_time_measured_by_the_agents_is_preferred(self):
        summary = {
            'hosts': 2, 'proxies': 1, 'host_bps': 80e6, 'origin_bps': 80e6,
            'proxy_bps': 80e6, 'artifact_bytes': 10 * MB,
            'image_bytes': 40e6, 'piece_size_kb': 1024,
            'decompress_seconds': 0.1,
            'results': [
                # 1 s transfer, 0.5 s landing and 0.5 s of the protocol's
                # own per host: the step alone would say 1 s of landing.
                {'strategy': 'sequential', 'hosts': 2, 'last': 4.0,
                 'times': [2.0, 4.0], 'landing': [0.4, 0.5, 0.6]}]}
        _s, efficiency, land, rate = sim.calibrate(summary)
        self.assertAlmostEqual(0.5, land)
        self.assertAlmostEqual(80e6, rate)
        self.assertAlmostEqual(1.0 / 1.5, efficiency['sequential'])

    def test_cern_tier_size(self):
        # 1300 hosts x 393 MB in 9 minutes at 1 Gbit/s per proxy.
        self.assertEqual(8, sim.cern_proxies(1300, 393 * MB, GBIT))
