"""Several N in one benchmark run (tools/bench/host_sweep.py)."""

import argparse
import io

import fixtures

import distribution_benchmark
import host_sweep
from precache.tests import base


def _summary(hosts, last, cpu, valid):
    return {'hosts': hosts, 'host_rate': '8mbit', 'bound_seconds': 10.0,
            'artifact_bytes': 100, 'results': [
                {'strategy': 'bittorrent', 'hosts': hosts, 'cached': hosts,
                 'last': last, 'origin_bytes': 103, 'cpu_average': cpu,
                 'cpu_peak': 100.0, 'testbed_cpu_percent': cpu - 10,
                 'valid': valid},
                {'strategy': 'squid', 'skipped': 'not installed'}]}


class ParseTest(base.TestCase):

    def test_host_counts(self):
        self.assertEqual([24], host_sweep.host_counts('24'))
        self.assertEqual([8, 16, 24, 48],
                         host_sweep.host_counts('8,16,24,48'))
        for bad in ('', 'x', '8,0', '-3'):
            self.assertRaises(ValueError, host_sweep.host_counts, bad)

    def test_one_rate_for_every_n_or_one_per_n(self):
        self.assertEqual(
            [('12mbit', '8mbit'), ('6mbit', '8mbit')],
            host_sweep.rates_per_count([8, 16], '12mbit,6mbit', '8mbit'))
        self.assertRaises(ValueError, host_sweep.rates_per_count,
                          [8, 16, 24], '12mbit,6mbit')

    def test_the_benchmark_refuses_a_list_of_the_wrong_length(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))
        self.assertRaises(SystemExit, distribution_benchmark.main,
                          ['--hosts', '8,16', '--host-rate', '1mbit,2mbit,'
                           '3mbit'])

    def test_a_child_gets_its_n_rates_and_everything_else(self):
        args = argparse.Namespace(
            proxies=1, image_mib=96, jitter=2.0, strategies=['bittorrent'],
            piece_size_kb=64, cpu_ceiling=70.0, extra_config=None,
            agent_option=[(('bittorrent_source', 'stream_window'), '0')])
        argv = host_sweep.child_argv('b.py', args, 16, ('6mbit', '6mbit',
                                                        '8mbit'),
                                     '/w/n16.json', '/w/n16', 'pcb-abc')
        line = ' '.join(argv)
        for part in ('--hosts 16', '--host-rate 6mbit', '--proxy-rate 8mbit',
                     '--cpu-ceiling 70.0', '--testbed-name pcb-abc',
                     '--work-dir /w/n16', '--json /w/n16.json',
                     '--agent-option bittorrent_source.stream_window=0'):
            self.assertIn(part, line)


class TableTest(base.TestCase):

    def test_rows_carry_the_ratio_and_validity(self):
        sweep = {'cpu_ceiling': 70.0, 'runs': [
            _summary(8, 12.0, 50.0, True), _summary(48, 20.0, 90.0, False)]}
        rows = host_sweep.rows(sweep)
        self.assertEqual([8, 48], [r['hosts'] for r in rows])
        self.assertEqual([1.2, 2.0], [r['ratio'] for r in rows])
        self.assertEqual([True, False], [r['valid'] for r in rows])
        self.assertAlmostEqual(1.03, rows[0]['origin_copies'])

    def test_a_round_where_no_host_cached_is_shown(self):
        summary = _summary(48, None, 100.0, False)
        summary['results'][0]['cached'] = 0
        printed = []
        self.useFixture(self._print_to(printed))
        host_sweep.print_sweep({'cpu_ceiling': 70.0, 'runs': [summary]})
        line = [x for x in printed if x.startswith('bittorrent')][0]
        self.assertIn(' 0/48 ', line)
        self.assertTrue(line.endswith('INVALID'))

    def test_the_table_marks_invalid_rounds(self):
        printed = []
        self.useFixture(self._print_to(printed))
        host_sweep.print_sweep({'cpu_ceiling': 70.0, 'runs': [
            _summary(8, 12.0, 50.0, True), _summary(48, 20.0, 90.0, False)]})
        lines = [line for line in printed if line.startswith('bittorrent')]
        self.assertTrue(lines[0].endswith('yes'))
        self.assertTrue(lines[1].endswith('INVALID'))

    @staticmethod
    def _print_to(lines):
        return fixtures.MonkeyPatch(
            'builtins.print', lambda *a, **k: lines.append(' '.join(
                str(x) for x in a)))
