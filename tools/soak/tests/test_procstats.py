"""Reading RSS and open fds from /proc (procstats.py)."""

import os
import subprocess
import sys
import time

import procstats

from precache.tests import base

#: A launcher that forks one child, both sleeping.
_LAUNCHER = ('import os, time\n'
             'if os.fork() == 0:\n'
             '    time.sleep(60)\n'
             'else:\n'
             '    time.sleep(60)\n')


class ProcStatsTest(base.TestCase):

    def start_launcher(self):
        process = subprocess.Popen([sys.executable, '-c', _LAUNCHER])
        self.addCleanup(process.wait)
        self.addCleanup(lambda: [os.kill(pid, 9) for pid in reversed(
            procstats.process_tree(process.pid))])
        deadline = time.monotonic() + 30
        while len(procstats.process_tree(process.pid)) < 2:
            self.assertLess(time.monotonic(), deadline, 'no child forked')
            time.sleep(0.05)
        return process

    def test_this_process(self):
        self.assertGreater(procstats.rss_bytes(os.getpid()), 1024 * 1024)
        before = procstats.open_fds(os.getpid())
        with open(__file__):
            self.assertEqual(before + 1, procstats.open_fds(os.getpid()))
        self.assertTrue(procstats.is_running(os.getpid()))

    def test_a_launcher_and_its_worker(self):
        process = self.start_launcher()
        tree = procstats.process_tree(process.pid)
        samples = procstats.sample_tree('agent a', process.pid, now=5.0)
        self.assertEqual([('agent a', tree[0]), ('agent a/worker', tree[1])],
                         [(s.name, s.pid) for s in samples])
        self.assertTrue(all(s.time == 5.0 and s.rss > 0 and s.fds >= 3
                            for s in samples))

    def test_a_gone_process_gives_nothing(self):
        process = subprocess.Popen([sys.executable, '-c', 'pass'])
        process.wait()
        self.assertIsNone(procstats.rss_bytes(process.pid))
        self.assertIsNone(procstats.open_fds(process.pid))
        self.assertFalse(procstats.is_running(process.pid))
        self.assertEqual([], procstats.sample_tree('x', process.pid))

    def test_sampler_follows_the_roots(self):
        process = self.start_launcher()
        roots = {'agent a': process.pid}
        sampler = procstats.Sampler(lambda: dict(roots), interval=0.05)
        sampler.start()
        time.sleep(0.2)
        roots.clear()
        sampler.stop()
        samples = sampler.snapshot()
        self.assertEqual({'agent a', 'agent a/worker'},
                         {s.name for s in samples})
        # After the root left, the last round took nothing.
        self.assertEqual(len(samples), len(sampler.snapshot()))
