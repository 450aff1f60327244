"""The soak's tables and its command line (report.py, soak.py)."""

import os

import fixtures

import growth
import procstats
import report
import soak

from precache.tests import base

MiB = growth.MiB


class ReportTest(base.TestCase):

    def samples(self):
        return [procstats.Sample(100.0 + t, name, pid, rss * MiB, fds)
                for t, name, pid, rss, fds in (
                    (0, 'service', 1, 10, 3), (0, 'agent a', 2, 8, 3),
                    (5, 'service', 1, 60, 10), (10, 'service', 1, 61, 11))]

    def test_timeline_has_a_row_per_time_and_a_column_per_process(self):
        lines = report.timeline_table(self.samples()).splitlines()
        self.assertEqual(['t', '(s)', 'agent', 'a', 'service'],
                         lines[0].split())
        self.assertEqual(['0', '8.0/3', '10.0/3'], lines[1].split())
        self.assertEqual(['10', '-', '61.0/11'], lines[-1].split())

    def test_process_table(self):
        summaries = growth.check(self.samples(), growth.DEFAULT_LIMITS)
        lines = report.process_table(summaries).splitlines()
        self.assertEqual(3, len(lines))
        self.assertIn('10.0/10.0/61.0/61.0', lines[1])
        self.assertIn('3/3/11/11', lines[1])
        self.assertTrue(lines[1].endswith('short'))

    def test_rounds_table(self):
        lines = report.rounds_table([
            {'cycle': 1, 'fault': 'agent-sigterm', 'target': 'soak-1',
             'converged': True, 'seconds': 3.04, 'recovery_seconds': 1.0,
             'stop_seconds': 0.8, 'problems': {}},
            {'cycle': 2, 'fault': 'agent-kill9', 'target': 'soak-2',
             'converged': False, 'seconds': 180.0, 'recovery_seconds': 178.0,
             'orphans': [42], 'problems': {'soak-2': {'missing': ['x']}}},
        ]).splitlines()
        self.assertIn('stopped in 0.8s', lines[1])
        self.assertIn('NO', lines[2].split())
        self.assertIn('orphans [42]', lines[2])


class CommandLineTest(base.TestCase):

    def test_unknown_fault_is_refused(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', open(os.devnull,
                                                                'w')))
        self.assertRaises(SystemExit, soak.parse_args,
                          ['--faults', 'agent-kill9,meteor'])

    def test_faults_and_limits(self):
        args = soak.parse_args(['--faults', 'broker-restart, agent-kill9',
                                '--rss-slack-mib', '4', '--fd-slack', '2'])
        self.assertEqual(['broker-restart', 'agent-kill9'], args.fault_names)
        limits = soak.limits_of(args)
        self.assertEqual((2, 4 * MiB), (limits.fd_slack, limits.rss_slack))

    def test_short_mode_presets_and_explicit_options(self):
        args = soak.parse_args(['--short', '--agents', '3'])
        self.assertEqual((10, 2, 3, 20.0),
                         (args.cycles, args.minutes, args.agents,
                          args.warmup))
        self.assertIn('broker-restart', args.fault_names)
        self.assertIn('agent-kill9', args.fault_names)

    def test_answers_are_counted_from_the_agents_logs(self):
        log = os.path.join(self.useFixture(fixtures.TempDir()).path, 'a.log')
        with open(log, 'w') as f:
            f.write('2026-12-04 19:00:00.000 7 INFO precache.agent.manager '
                    '[-] Image 1f cached in 0.4s\n'
                    '... Image 2e existing in 0.0s\nother line\n')
        self.assertEqual({'cached': 1, 'existing': 1}, soak.answers(
            {'agent a': log, 'service': log}))

    def test_failures(self):
        summaries = [{'name': 'service', 'pid': 3,
                      'problems': ['open fds grew by 9']}]
        rounds = [{'cycle': 1, 'fault': 'none', 'converged': False,
                   'problems': {'a': {'missing': ['x']}}},
                  {'cycle': 2, 'fault': 'agent-kill9', 'converged': True,
                   'orphans': [7]}]
        self.assertEqual(
            ["round 1 (none) did not converge: {'a': {'missing': ['x']}}",
             'round 2 (agent-kill9): workers [7] outlived their killed '
             'launcher', 'service (pid 3): open fds grew by 9'],
            soak.failures_of(rounds, summaries))
