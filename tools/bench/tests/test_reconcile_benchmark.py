"""The scaling table of tools/bench/reconcile_benchmark.py."""

import argparse

from precache.tests import base
import reconcile_benchmark as bench


def _row(name, casts, seconds):
    return (name, casts, casts, 0, seconds)


class ScalingTest(base.TestCase):

    def test_ratios_of_time_and_casts(self):
        small = [_row(bench.STEADY, 0, [0.1, 0.2, 0.3]),
                 _row('new image', 1000, [0.5])]
        large = [_row(bench.STEADY, 0, [0.3]),
                 _row('new image', 10000, [2.0])]
        rows = bench.scaling_rows(small, large)
        self.assertEqual(bench.STEADY, rows[0][0])
        self.assertAlmostEqual(1.5, rows[0][5])
        self.assertIsNone(rows[0][6])
        self.assertAlmostEqual(4.0, rows[1][5])
        self.assertAlmostEqual(10.0, rows[1][6])

    def test_goals(self):
        self.useFixture(__import__('fixtures').MonkeyPatch(
            'builtins.print', lambda *a: None))
        steady_ok = [(bench.STEADY, 0, 0, 0.1, 0.15, 1.5, None)]
        self.assertTrue(bench.report_scaling(steady_ok, 'sqlite', 1, 10))
        steady_bad = [(bench.STEADY, 0, 0, 0.1, 0.2, 2.0, None)]
        self.assertFalse(bench.report_scaling(steady_bad, 'sqlite', 1, 10))
        casts_bad = [('new image', 10, 100, 0.1, 2.0, 20.0, 10.0)]
        self.assertFalse(bench.report_scaling(casts_bad, 'sqlite', 1, 10))


class HostCountsTest(base.TestCase):

    def test_one_or_several_sorted(self):
        self.assertEqual([10000], bench.host_counts('10000'))
        self.assertEqual([1000, 10000], bench.host_counts('10000,1000'))

    def test_bad(self):
        for text in ('', 'many', '0', '-1,5'):
            self.assertRaises(argparse.ArgumentTypeError, bench.host_counts,
                              text)


class FollowerReportTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(__import__('fixtures').MonkeyPatch(
            'builtins.print', lambda *a: None))
        self.args = argparse.Namespace(hosts=[10000], images=50, cycles=3,
                                       follower_rate=40)

    def test_a_follower_that_casts_fails_the_run(self):
        rows = [('new image', 2000, 2000, [0.2, 0.3], [0.3, 0.4], 39.5)]
        self.assertTrue(bench.report_follower(rows, 0, 'postgresql',
                                              self.args))
        self.assertFalse(bench.report_follower(rows, 1, 'postgresql',
                                               self.args))

    def test_unexpected_casts_fail_the_run(self):
        rows = [('new image', 1999, 2000, [0.2], [0.3], 39.5)]
        self.assertFalse(bench.report_follower(rows, 0, 'postgresql',
                                               self.args))

    def test_the_load_speaks_for_hosts_spread_over_the_fleet(self):
        import follower
        self.assertEqual([1, 11, 21], follower.hosts(3, 10000))
        self.assertEqual([1, 11], follower.hosts(5, 20))


class OutcomeTest(base.TestCase):

    def test_exact_deferred_must_agree(self):
        outcomes, deferred = bench._outcome([(5, '3', 0.1), (5, '3', 0.2)])
        self.assertEqual(({(5, '3')}, '3'), (outcomes, deferred))
        outcomes, _d = bench._outcome([(5, '3', 0.1), (5, '4', 0.2)])
        self.assertEqual(2, len(outcomes))

    def test_lower_bounds_agree_on_having_stopped(self):
        outcomes, deferred = bench._outcome([(2000, '23+', 0.1),
                                             (2000, '18+', 0.2)])
        self.assertEqual(({(2000, '+')}, '18+'), (outcomes, deferred))
