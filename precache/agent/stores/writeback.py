"""Starting the writeback of a file while it is still being written.

An image lands only once its bytes are on disk (the store fsyncs the
temporary file before it renames it). Left to itself, the kernel keeps a
freshly written file in dirty pages until a threshold or an age (often 30
seconds) is reached, so the whole image is written out by that final
fsync, after the download: for a 1 GiB image, a few tenths of a second up
to seconds of disk time added to every landing.

:class:`WritebackFile` wraps the temporary file: every :data:`STEP` bytes
written, a background thread asks the kernel to start writing out the
file up to one step behind the writes
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which queues the writeback
and returns without waiting for it), so the disk works while the
download goes on and the final fsync finds little left. The writer never
waits for the thread (a request made while it is busy is merged into the
one pending), nor for a page being written out: the step still being
written is left alone, since a write into a page under writeback may
have to wait for it to end.

This changes no guarantee: nothing is durable before the store's fsync,
which still runs before the rename; a failed download's file is removed
as before (the thread holds a duplicate descriptor of its own, so
closing or removing the file never races it).
"""

import ctypes
import os
import threading

from oslo_log import log as logging

from precache.common import libc

LOG = logging.getLogger(__name__)

#: Bytes written between two requests to start the writeback.
STEP = 32 * 1024 * 1024

#: ``SYNC_FILE_RANGE_WRITE`` of <fcntl.h>: start writing out the dirty
#: pages of the range, without waiting for pages already being written.
SYNC_FILE_RANGE_WRITE = 2


#: libc's ``sync_file_range``, or None where there is none.
_SYNC_FILE_RANGE = libc.function(
    'sync_file_range',
    (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint))


def start_writeback(fd, offset, length):
    """Ask the kernel to start writing out ``length`` bytes at ``offset``.

    Returns at once (the pages are queued for writing, not waited for).
    Where ``sync_file_range`` is missing (not Linux), the range is written
    out with ``fdatasync`` instead, which waits.

    :raises OSError: the kernel refused.
    """
    if _SYNC_FILE_RANGE is None:
        os.fdatasync(fd)
        return
    if _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class WritebackFile(object):
    """A binary file whose written bytes start going to disk at once.

    Behaves as the file object it wraps (every attribute not defined here
    is the wrapped file's); :meth:`write` counts the bytes and, every
    ``step`` of them, wakes a thread that starts the writeback of the
    file's bytes so far. :meth:`close` (or leaving a ``with`` block) stops
    the thread without waiting for the disk, then closes the file.

    Writeback is an optimisation: when the kernel refuses it (e.g. on a
    file system without it), it is logged once and the file is written as
    if unwrapped.

    :param fileobj: a binary file object open for writing, with a real
        file descriptor.
    :param step: bytes written between two writeback requests;
        :data:`STEP` when None.
    """

    def __init__(self, fileobj, step=None):
        self._file = fileobj
        self._step = step or STEP
        self._unrequested = 0
        self._end = 0  # bytes of the file to write out, from offset 0
        self._wake = threading.Condition()
        self._stopping = False
        self._fd = os.dup(fileobj.fileno())
        self._thread = threading.Thread(target=self._run,
                                        name='precache-writeback',
                                        daemon=True)
        self._thread.start()

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def write(self, data):
        """Write ``data`` at the file's position; return its length."""
        written = self._file.write(data)
        self._unrequested += written
        if self._unrequested >= self._step:
            self._unrequested = 0
            # Not the last step: a page still being written would wait
            # for its writeback to end (stable pages) before taking more.
            self._request(self._file.tell() - self._step)
        return written

    def _request(self, end):
        with self._wake:
            self._end = max(self._end, end)
            self._wake.notify()

    def _run(self):
        done = 0
        try:
            while True:
                with self._wake:
                    while not self._stopping and self._end <= done:
                        self._wake.wait()
                    if self._stopping:
                        return
                    end = self._end
                try:
                    start_writeback(self._fd, 0, end)
                except OSError as exc:
                    LOG.info('Writeback cannot be started early on this '
                             'file system (%s); the final fsync writes the '
                             'whole file', exc)
                    return
                done = end
        finally:
            os.close(self._fd)

    def close(self):
        """Stop the writeback thread and close the file."""
        self.stop_writeback()
        self._file.close()

    def stop_writeback(self):
        """Stop requesting writeback; the file stays open."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
