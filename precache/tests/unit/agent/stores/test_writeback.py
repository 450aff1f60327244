"""Starting the writeback of a file while it is written."""

import errno
import os
import threading

import fixtures

from precache.agent.stores import writeback
from precache.tests import base

KiB = 1024


class RecordedWriteback(fixtures.Fixture):
    """Records each start_writeback call, then makes it for real."""

    def __init__(self, error=None):
        super().__init__()
        self.error = error
        self.calls = []
        self.called = threading.Event()

    def _setUp(self):
        real = writeback.start_writeback

        def start_writeback(fd, offset, length):
            self.calls.append((offset, length))
            self.called.set()
            if self.error is not None:
                raise OSError(self.error, os.strerror(self.error))
            real(fd, offset, length)

        self.useFixture(fixtures.MonkeyPatch(
            'precache.agent.stores.writeback.start_writeback',
            start_writeback))


class TestWritebackFile(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.tempdir, 'image')
        self.threads = threading.active_count()

    def test_bytes_and_holes_are_written_as_through_the_file(self):
        with writeback.WritebackFile(open(self.path, 'wb'),
                                     step=64 * KiB) as out:
            out.write(b'a' * 100 * KiB)
            out.seek(300 * KiB)
            out.write(b'b' * 100 * KiB)
            out.truncate(500 * KiB)
        with open(self.path, 'rb') as f:
            data = f.read()
        self.assertEqual(b'a' * 100 * KiB + bytes(200 * KiB) +
                         b'b' * 100 * KiB + bytes(100 * KiB), data)

    def test_writeback_is_requested_one_step_behind_the_writes(self):
        recorded = self.useFixture(RecordedWriteback())
        out = writeback.WritebackFile(open(self.path, 'wb'), step=64 * KiB)
        self.addCleanup(out.close)
        # The step being written is left alone: its pages still change.
        for _ in range(3):
            out.write(b'x' * 32 * KiB)
        self.assertFalse(recorded.called.wait(0.2))
        out.write(b'x' * 32 * KiB)
        self.assertTrue(recorded.called.wait(5))
        self.assertEqual((0, 64 * KiB), recorded.calls[0])

    def test_close_stops_the_thread_and_closes_its_descriptor(self):
        raw = open(self.path, 'wb')
        out = writeback.WritebackFile(raw, step=4 * KiB)
        out.write(b'x' * 16 * KiB)
        fds = set(os.listdir('/proc/self/fd'))
        out.close()
        out._thread.join(5)
        self.assertFalse(out._thread.is_alive())
        self.assertTrue(raw.closed)
        self.assertLess(len(set(os.listdir('/proc/self/fd'))), len(fds) - 1)

    def test_refused_writeback_leaves_the_writes_alone(self):
        recorded = self.useFixture(RecordedWriteback(error=errno.EINVAL))
        with writeback.WritebackFile(open(self.path, 'wb'),
                                     step=4 * KiB) as out:
            out.write(b'x' * 8 * KiB)
            self.assertTrue(recorded.called.wait(5))
            out._thread.join(5)
            self.assertFalse(out._thread.is_alive())
            out.write(b'y' * 8 * KiB)
        self.assertEqual(1, len(recorded.calls))
        with open(self.path, 'rb') as f:
            self.assertEqual(b'x' * 8 * KiB + b'y' * 8 * KiB, f.read())

    def test_start_writeback_of_a_real_file(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT)
        self.addCleanup(os.close, fd)
        os.write(fd, b'z' * 64 * KiB)
        writeback.start_writeback(fd, 0, 64 * KiB)

    def test_start_writeback_error_is_raised(self):
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT)
        os.close(fd)
        self.assertRaises(OSError, writeback.start_writeback, fd, 0, 1)
