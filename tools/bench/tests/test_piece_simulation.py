"""Validating and extrapolating the piece model (piece_simulation.py)."""

import argparse

import piece_simulation as psim
from precache.tests import base

MB = 1e6


def _summary(hosts, last, valid=True, landing=(0.5, 0.5)):
    return {'hosts': hosts, 'host_rate': '8mbit', 'host_bps': 8e6,
            'origin_bps': 8e6, 'artifact_bytes': 2 * MB, 'piece_size_kb': 64,
            'bound_seconds': 2.0, 'results': [
                {'strategy': 'sequential', 'hosts': hosts, 'cached': hosts,
                 'last': 99.0},
                {'strategy': 'bittorrent', 'hosts': hosts, 'cached': hosts,
                 'last': last, 'landing': list(landing),
                 'origin_bytes': 2.06 * MB,
                 'cpu_average': 50.0 if valid else 95.0, 'valid': valid}]}


class RoundsTest(base.TestCase):

    def test_bittorrent_rounds_of_a_sweep_and_of_a_single_run(self):
        rounds = psim.measured_rounds([
            {'runs': [_summary(16, 3.0), _summary(8, 2.8, valid=False)]},
            _summary(4, 2.5)])
        self.assertEqual([4, 8, 16], [r['hosts'] for r in rounds])
        self.assertEqual([True, False, True], [r['valid'] for r in rounds])
        self.assertEqual(0.5, rounds[0]['landing'])
        self.assertEqual(64 * 1024, rounds[0]['piece_bytes'])

    def test_a_round_from_before_validity_is_checked_here(self):
        summary = _summary(24, 46.4)
        del summary['results'][1]['valid']
        summary['results'][1]['cpu_average'] = 71.0
        self.assertFalse(psim.measured_rounds([summary])[0]['valid'])

    def test_rounds_with_failed_hosts_are_left_out(self):
        summary = _summary(4, 2.5)
        summary['results'][1]['cached'] = 3
        self.assertEqual([], psim.measured_rounds([summary]))


class ValidationTest(base.TestCase):

    def test_calibration_matches_the_round_it_was_fitted_on(self):
        rnd = psim.measured_rounds([_summary(8, 4.0)])[0]
        frames = psim.calibrate(rnd)
        self.assertGreater(frames, 0)
        error = psim.model_last(rnd, frames) / rnd['measured'] - 1
        self.assertLess(abs(error), 0.05)

    def test_the_queues_are_fitted_on_a_round_that_behaved_as_modelled(self):
        rounds = psim.measured_rounds([{'runs': [
            _summary(4, 3.0, valid=False), _summary(8, 9.0),
            _summary(16, 3.5)]}])
        rounds[1]['origin_copies'] = 3.6   # fell back to the seed
        self.assertEqual(16, psim.calibration_round(rounds)['hosts'])
        rounds[2]['origin_copies'] = 3.6
        self.assertEqual(8, psim.calibration_round(rounds)['hosts'])
        rounds[1]['valid'] = rounds[2]['valid'] = False
        self.assertEqual(4, psim.calibration_round(rounds)['hosts'])

    def test_a_round_faster_than_the_ideal_model_needs_no_queue(self):
        rnd = psim.measured_rounds([_summary(8, 1.0)])[0]
        self.assertEqual(0.0, psim.calibrate(rnd))

    def test_errors_and_their_range(self):
        measured = psim.measured_rounds([
            _summary(4, 3.0), _summary(8, 3.5),
            _summary(16, 9.0, valid=False)])
        rounds = psim.validate(measured, 0.0)
        for r in rounds:
            self.assertAlmostEqual(r['model'] / r['measured'] - 1,
                                   r['error'])
        low, high = psim.error_range(rounds, calibrated_n=4)
        # Only N=8 counts: N=4 was fitted on, N=16 is invalid.
        self.assertEqual((min(0.0, rounds[1]['error']),
                          max(0.0, rounds[1]['error'])), (low, high))


class ExtrapolationTest(base.TestCase):

    def _args(self, **kwargs):
        values = dict(host_gbps=1.0, origin_gbps=1.0, squid_gbps=2.0,
                      artifact_mb=20.0, image_mb=60.0, piece_kb=256,
                      connections=200, rack_hosts=0, rack_gbps=None,
                      landing_rate=400.0, seed=0, proxies=[2])
        values.update(kwargs)
        return argparse.Namespace(**values)

    def test_a_cloud_with_the_range_of_the_errors(self):
        r = psim.extrapolate(self._args(), 50, 2.0, (-0.1, 0.2))
        self.assertAlmostEqual(0.15, r['landing'])
        self.assertAlmostEqual(r['network_last'] + 0.15, r['last'])
        self.assertAlmostEqual(r['last'] / 1.2, r['range'][0])
        self.assertAlmostEqual(r['last'] / 0.9, r['range'][1])
        self.assertGreater(r['last'], r['bound'])
        self.assertAlmostEqual(1.0, r['origin_copies'])

    def test_squid_is_limited_by_its_proxies(self):
        args = self._args()
        two = psim.squid_seconds(args, 100, 2)
        four = psim.squid_seconds(args, 100, 4)
        self.assertGreater(two, four)
        # 50 hosts per 2 Gbit/s proxy at most: 1 Gbit/s each, no less
        # than S_c / 1 Gbit/s.
        self.assertGreater(two, 20 * MB * 8 / 1e9)

    def test_main_needs_a_testbed_or_a_queue(self):
        import io

        import fixtures
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))
        self.assertRaises(SystemExit, psim.main, ['--hosts', '10'])
