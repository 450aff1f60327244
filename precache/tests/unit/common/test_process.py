"""When a process leads a process group of its own."""

import json
import os
import subprocess
import sys
import textwrap
import time
from unittest import mock

import fixtures

from precache.common import process
from precache.tests import base

PID = 4242
GROUP = 4000
BACKGROUND = ('process group %d is not in the foreground of a terminal'
              % GROUP)


class NeedsOwnProcessGroupTest(base.TestCase):
    """The decision, on a fake /proc and fake terminal calls."""

    def setUp(self):
        super().setUp()
        self.proc = self.useFixture(fixtures.TempDir()).path
        os.mkdir(os.path.join(self.proc, 'self'))
        self.patch(process, 'PROC', self.proc)
        self.pgrp = GROUP
        self.patch(os, 'getpid', lambda: PID)
        self.patch(os, 'getpgrp', lambda: self.pgrp)
        self.setsid = mock.Mock()
        self.patch(os, 'setsid', self.setsid)
        # No terminal on 0, 1, 2 and no controlling terminal by default.
        self.ttys = {}
        self.patch(os, 'isatty', lambda fd: fd in self.ttys)
        self.patch(os, 'tcgetpgrp', self.tcgetpgrp)
        self.controlling = None
        self.patch(os, 'open', self.open_tty)
        self.closed = []
        self.patch(os, 'close', self.closed.append)

    def tcgetpgrp(self, fd):
        if fd == 99:
            return self.controlling
        if fd not in self.ttys:
            raise OSError(25, 'Inappropriate ioctl for device')
        return self.ttys[fd]

    def open_tty(self, path, flags):
        self.assertEqual('/dev/tty', path)
        if self.controlling is None:
            raise OSError(6, 'No such device or address')
        return 99

    def leader(self, pgid=GROUP):
        os.makedirs(os.path.join(self.proc, str(pgid)))
        with open(os.path.join(self.proc, str(pgid), 'stat'), 'w') as f:
            f.write('%d (sh) S 1 %d' % (pgid, pgid))

    def assertKeeps(self):
        self.assertIsNone(process.ensure_own_process_group())
        self.setsid.assert_not_called()

    def assertChanges(self, reason):
        self.assertEqual(reason, process.ensure_own_process_group())
        self.setsid.assert_called_once_with()

    def test_group_leader_keeps_its_group(self):
        self.pgrp = PID
        self.assertIsNone(process.needs_own_process_group())
        self.assertKeeps()

    def test_no_group_keeps_it(self):
        self.pgrp = 0
        self.assertKeeps()

    def test_exited_leader(self):
        # Even in the foreground: oslo.messaging would fail to read
        # /proc/<group>/stat.
        self.ttys = {0: GROUP}
        self.assertChanges('the leader of process group %d has exited'
                           % GROUP)

    def test_foreground_of_a_terminal_keeps_its_group(self):
        # Ctrl-C goes to the terminal's foreground group: stay in it.
        self.leader()
        self.ttys = {0: GROUP}
        self.assertKeeps()

    def test_background_job_of_a_terminal(self):
        self.leader()
        self.ttys = {0: 1234}
        self.assertChanges(BACKGROUND)

    def test_no_terminal(self):
        # systemd, a container, cron, a test runner without a terminal.
        self.leader()
        self.assertChanges(BACKGROUND)

    def test_terminal_on_stderr_only(self):
        # stdin and stdout redirected: stderr still tells.
        self.leader()
        self.ttys = {2: GROUP}
        self.assertKeeps()

    def test_controlling_terminal_without_a_terminal_fd(self):
        # Every fd redirected: /dev/tty is still the terminal.
        self.leader()
        self.controlling = GROUP
        self.assertKeeps()
        self.assertEqual([99], self.closed)
        self.controlling = 1234
        self.assertChanges(BACKGROUND)

    def test_setsid_refused(self):
        self.setsid.side_effect = PermissionError(1, 'EPERM')
        self.assertIsNone(process.ensure_own_process_group())

    def test_without_proc(self):
        os.rmdir(os.path.join(self.proc, 'self'))
        kill = mock.Mock(side_effect=ProcessLookupError)
        self.patch(os, 'kill', kill)
        self.assertIsNotNone(process.needs_own_process_group())
        kill.assert_called_once_with(GROUP, 0)
        kill.side_effect = PermissionError
        self.ttys = {0: GROUP}
        self.assertIsNone(process.needs_own_process_group())


# Waits until the shell leading its group has exited, then reports its
# group before and after ensure_own_process_group().
CHILD = textwrap.dedent('''
    import json, os, sys, time
    from precache.common import process
    group = os.getpgrp()
    deadline = time.monotonic() + 10
    while (os.path.exists('/proc/%d/stat' % group) and
           time.monotonic() < deadline):
        time.sleep(0.01)
    reason = process.ensure_own_process_group()
    with open(sys.argv[1] + '.tmp', 'w') as f:
        json.dump(dict(pid=os.getpid(), before=group, after=os.getpgrp(),
                       session=os.getsid(0), reason=reason), f)
    os.rename(sys.argv[1] + '.tmp', sys.argv[1])
''')


class ExitedShellTest(base.TestCase):
    """A real process started in the background by a shell that exits."""

    def test_leads_its_own_group(self):
        out = os.path.join(self.useFixture(
            fixtures.TempDir()).path, 'out.json')
        shell = subprocess.Popen(
            ['sh', '-c', '"$0" -c "$1" "$2" </dev/null >/dev/null 2>&1 &',
             sys.executable, CHILD, out], start_new_session=True)
        self.assertEqual(0, shell.wait(timeout=10))
        for _ in range(1000):
            if os.path.exists(out):
                break
            time.sleep(0.01)
        with open(out) as f:
            result = json.load(f)
        self.assertEqual(shell.pid, result['before'])
        self.assertEqual(result['pid'], result['after'])
        self.assertEqual(result['pid'], result['session'])
        self.assertEqual('the leader of process group %d has exited'
                         % shell.pid, result['reason'])
