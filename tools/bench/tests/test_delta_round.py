"""The delta round of the distribution benchmark (tools/bench/delta_round.py).

Its timing runs on the testbed; here: the pair it needs, how it stages
the versions for the origin, and its summary.
"""

import argparse
import io
import os
from unittest import mock

import fixtures

import delta_round
from precache.tests import base


class DeltaRoundTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.pair = self.useFixture(fixtures.TempDir()).path
        self.work = self.useFixture(fixtures.TempDir()).path

    def write_pair(self):
        for name in delta_round.PAIR_FILES:
            with open(os.path.join(self.pair, name), 'wb') as f:
                f.write(name.encode())

    def test_a_pair_without_v2_is_refused(self):
        with open(os.path.join(self.pair, 'v1.qcow2'), 'wb'):
            pass
        parser = argparse.ArgumentParser()
        with mock.patch('sys.stderr', io.StringIO()) as err:
            self.assertRaises(SystemExit, delta_round.check_pair, parser,
                              self.pair)
        self.assertIn('has no v2.qcow2', err.getvalue())

    def test_each_version_in_a_directory_of_its_own_named_by_id(self):
        self.write_pair()
        self.assertEqual(self.pair,
                         delta_round.check_pair(None, self.pair))
        v1_dir, v2_dir = delta_round._stage(self.pair, self.work)
        self.assertEqual([delta_round.V1_ID], os.listdir(v1_dir))
        self.assertEqual([delta_round.V2_ID], os.listdir(v2_dir))
        with open(os.path.join(v2_dir, delta_round.V2_ID), 'rb') as f:
            self.assertEqual(b'v2.qcow2', f.read())

    def test_summary_gives_the_ratio_and_the_bytes_per_host(self):
        def phase(last, received):
            return {'cached': 24, 'hosts': 24, 'last': last, 'p50': last,
                    'source_counts': {}, 'bytes_per_host': received,
                    'landing': [2.0], 'cpu_average': 50.0,
                    'cpu_peak': 90.0}

        summary = {'pair': self.pair, 'v1_full_bytes': 37 * 10 ** 6,
                   'v2_full_bytes': 37 * 10 ** 6,
                   'delta_bytes': 5 * 10 ** 6,
                   'full': phase(50.0, 37 * 10 ** 6),
                   'delta': phase(10.0, 5 * 10 ** 6), 'ratio': 0.2}
        with mock.patch('sys.stdout', io.StringIO()) as out:
            delta_round.print_summary(summary)
        self.assertIn('v2-delta time / v1-full time: 0.200 (goal <= 0.3)',
                      out.getvalue())
        self.assertIn('bytes per host 5000000', out.getvalue())


class DeltaStrategiesTest(base.TestCase):

    def test_each_delta_strategy_has_its_server(self):
        self.assertEqual({'bittorrent-delta': ('bittorrent', 'BitTorrent'),
                          'squid-delta': ('http', 'Squid')},
                         delta_round.SERVERS)

    def test_a_delta_strategy_needs_the_pair(self):
        import distribution_benchmark
        for strategy in ('squid-delta', 'bittorrent-delta'):
            with mock.patch('sys.stderr', io.StringIO()) as err:
                self.assertRaises(SystemExit, distribution_benchmark.main,
                                  ['--strategies', strategy])
            self.assertIn('strategy %s needs --delta-pair' % strategy,
                          err.getvalue())

    def test_the_summary_names_the_data_plane(self):
        phase = {'cached': 24, 'hosts': 24, 'last': 10.0, 'p50': 9.0,
                 'source_counts': {}, 'bytes_per_host': 5,
                 'landing': [2.0], 'cpu_average': 50.0, 'cpu_peak': 90.0}
        summary = {'strategy': 'squid-delta', 'label': 'Squid',
                   'pair': '/pair', 'v1_full_bytes': 10 ** 6,
                   'v2_full_bytes': 10 ** 6, 'delta_bytes': 10 ** 5,
                   'full': phase, 'delta': phase, 'ratio': 1.0}
        with mock.patch('sys.stdout', io.StringIO()) as out:
            delta_round.print_summary(summary)
        self.assertIn('Delta round squid-delta', out.getvalue())
        self.assertIn('v2 as a delta by Squid', out.getvalue())
