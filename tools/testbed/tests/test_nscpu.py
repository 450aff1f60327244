"""CPU time of a testbed's processes (tools/testbed/nscpu.py)."""

import os
import subprocess
import sys
import time

import nscpu
from precache.tests import base


class ParseStatTest(base.TestCase):

    def test_times_after_a_command_name_with_spaces_and_parentheses(self):
        line = ('4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 '
                '700 300 20 10 20 0 3 0 123456 1000 10 ' + '0 ' * 30)
        self.assertEqual((123456, 1030), nscpu.parse_stat(line))

    def test_this_process_is_found_in_its_own_namespace(self):
        inode = os.stat('/proc/self/ns/net').st_ino
        pids = [pid for (pid, _start), _cpu in nscpu.processes_in({inode})]
        self.assertIn(os.getpid(), pids)

    def test_no_namespace_no_process(self):
        self.assertEqual([], list(nscpu.processes_in(set())))


class NamespaceCpuTest(base.TestCase):

    def test_a_busy_child_started_inside_the_window_counts(self):
        # This process's own namespace, by inode (not one in /run/netns).
        own = os.stat('/proc/self/ns/net').st_ino
        with nscpu.NamespaceCpu([], interval=0.05, inodes={own}) as monitor:
            child = subprocess.Popen([
                sys.executable, '-c', 'import time\nt = time.process_time()'
                '\nwhile time.process_time() - t < 0.3: pass'])
            child.wait()
            time.sleep(0.1)
        self.assertGreaterEqual(monitor.seconds, 0.25)
        self.assertGreater(monitor.percent(), 0)
