"""Moving a stream of chunks between threads with bounded memory.

A download runs as three stages, each in its own thread, so that network
reads, decompression and hashing overlap on different CPUs (zstd, zlib,
hashlib and file I/O release the GIL for large buffers):

* :class:`Prefetcher` runs the source's iterator in a thread, a bounded
  number of chunks ahead of the consumer;
* the caller's thread decompresses and writes;
* :class:`ThreadedSink` hands the decompressed chunks to a thread that
  hashes them; :class:`Tee` feeds it and the writer alike.

Queues are bounded, so at most a few chunks per stage are in memory.
Errors propagate: a failing stage stops the others, and the first error
is raised in the caller's thread.
"""

import queue
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Chunks a stage may be ahead of the next one.
DEPTH = 4
#: Seconds between two checks whether the consumer gave up.
_POLL = 0.5

_END = object()


#: Seconds between two looks at a Prefetcher's cancel event.
CANCEL_POLL = 0.2


class Cancelled(Exception):
    """A :class:`Prefetcher`'s cancel event was set."""


class _Failure(object):
    def __init__(self, exc):
        self.exc = exc


class Prefetcher(object):
    """Iterate over ``iterable`` in a worker thread.

    Use as a context manager: leaving the block early (an error
    downstream) tells the worker to stop and close ``iterable`` after the
    chunk it is reading; the worker is not waited for, since a network
    read can take up to its timeout to return.

    :param iterable: the chunks to read, e.g. a source's generator. An
        exception it raises is raised to the consumer after the chunks
        that came before it.
    :param depth: chunks read ahead at most.
    :param name: the worker thread's name.
    :param cancel: an optional :class:`threading.Event`, or any object
        with an ``is_set()`` method (e.g. a download's
        :class:`~precache.agent.watchdog.Watchdog`), polled before each
        item and every :data:`CANCEL_POLL` seconds while the consumer
        waits; once it is true, the consumer's iteration raises
        :class:`Cancelled`, even while the worker is blocked in a read.
    """

    def __init__(self, iterable, depth=DEPTH, name='prefetch', cancel=None):
        self._iterable = iterable
        self._cancel = cancel
        self._queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name,
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        # Unblock a worker waiting for room in the queue.
        while not self._queue.empty():
            self._queue.get_nowait()

    def __iter__(self):
        while True:
            item = self._get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def _get(self):
        if self._cancel is None:
            return self._queue.get()
        while True:
            if self._cancel.is_set():
                raise Cancelled()
            try:
                return self._queue.get(timeout=CANCEL_POLL)
            except queue.Empty:
                continue

    def _run(self):
        iterator = iter(self._iterable)
        try:
            for item in iterator:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as exc:
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, 'close', None)
            if close is not None:
                try:
                    close()
                except Exception:
                    LOG.exception('Closing %s failed', self._thread.name)

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False


class ThreadedSink(object):
    """A ``write()``/``close()`` sink whose writes run in a worker thread.

    :param write: called in the worker with each chunk, in order. The
        chunks must not be modified by the producer after it wrote them.
    :param depth: chunks queued at most before :meth:`write` blocks.
    :param name: the worker thread's name.
    """

    def __init__(self, write, depth=DEPTH, name='sink'):
        self._write = write
        self._queue = queue.Queue(depth)
        self._error = None
        self._thread = threading.Thread(target=self._run, name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:
                    self._error = exc
            # After an error, keep draining so write() never blocks.

    def write(self, data):
        """Queue ``data`` for the worker.

        :raises: the worker's error, if its last writes failed.
        """
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self):
        """Wait until every queued chunk is written.

        :raises: the worker's error, if a write failed.
        """
        self._finish()
        if self._error is not None:
            raise self._error

    def abort(self):
        """Stop after the queued chunks; ignore the worker's errors."""
        self._finish()

    def _finish(self):
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()


class Tee(object):
    """A sink writing each chunk to several sinks, in order.

    :param sinks: objects with a ``write(data)`` method.
    """

    def __init__(self, *sinks):
        self._writes = [sink.write for sink in sinks]

    def write(self, data):
        for write in self._writes:
            write(data)
