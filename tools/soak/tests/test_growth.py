"""The growth check of the soak (tools/soak/growth.py)."""

import growth
import procstats

from precache.tests import base

MiB = growth.MiB
LIMITS = growth.Limits(warmup=10, min_span=20, fd_slack=4,
                       rss_fraction=0.25, rss_slack=8 * MiB)


def series(name, pid, values, start=100.0, step=10.0):
    """Samples of one process: ``values`` are (RSS MiB, fds)."""
    return [procstats.Sample(start + i * step, name, pid, int(rss * MiB),
                             fds)
            for i, (rss, fds) in enumerate(values)]


class GrowthTest(base.TestCase):

    def test_steady_process_is_ok(self):
        samples = series('service', 10, [(5, 3), (60, 12), (61, 14),
                                         (62, 15), (64, 16), (66, 15),
                                         (67, 16)])
        summary, = growth.check(samples, LIMITS)
        self.assertEqual('ok', summary['verdict'], summary['problems'])
        self.assertEqual({'start': 3, 'min': 3, 'max': 16, 'end': 16},
                         summary['fds'])
        # The warm-up sample is the first 10 s or more after the start.
        self.assertEqual((110.0, 12), (summary['warm']['time'],
                                       summary['warm']['fds']))

    def test_fd_growth_after_the_warm_up_fails(self):
        samples = series('agent a', 11, [(60, 10), (60, 10), (60, 10),
                                         (60, 12), (60, 14), (60, 15)])
        summary, = growth.check(samples, LIMITS)
        self.assertEqual('grew', summary['verdict'])
        self.assertEqual(['open fds grew by 5 (10 -> 15) after the warm-up, '
                          'more than 4'], summary['problems'])

    def test_rss_growth_beyond_the_fraction_fails(self):
        samples = series('agent a', 11, [(40, 10), (40, 10), (40, 10),
                                         (46, 10), (52, 10), (60, 10)])
        summary, = growth.check(samples, LIMITS)
        self.assertEqual('grew', summary['verdict'])
        self.assertIn('RSS grew by 20.0 MiB (40.0 -> 60.0 MiB)',
                      summary['problems'][0])

    def test_small_process_may_grow_by_the_absolute_slack(self):
        samples = series('agent a', 11, [(8, 3), (8, 3), (8, 3), (12, 3),
                                         (15, 3), (15.5, 3)])
        summary, = growth.check(samples, LIMITS)
        self.assertEqual('ok', summary['verdict'], summary['problems'])

    def test_restarted_process_is_judged_per_incarnation(self):
        # The second incarnation starts smaller: not a drop nor a growth
        # of the first one; it lived too short to be judged.
        samples = (series('agent a', 11, [(60, 10)] * 6) +
                   series('agent a', 12, [(70, 12), (70, 12)], start=160))
        first, second = growth.check(samples, LIMITS)
        self.assertEqual((11, 'ok'), (first['pid'], first['verdict']))
        self.assertEqual((12, 'short', None),
                         (second['pid'], second['verdict'], second['warm']))
