"""The thread that keeps the agent's chunk index up to date.

The index itself (the sqlite database, the lookups, the cutting of one
file) is :mod:`precache.agent.chunk_index`; this module decides when a
file is indexed: at start for what the store already holds, after each
landing, at each keep-alive rescan and when a delta names another
average chunk size. It runs at the lowest CPU priority and pauses while
the agent downloads.
"""

import os
import queue
import sqlite3
import threading

from oslo_log import log as logging

from precache.agent import chunk_index
from precache.common import exception

LOG = logging.getLogger(__name__)

#: Seconds between two looks at the agent's downloads while paused.
PAUSE_POLL = 0.5


class Indexer(object):
    """Keeps the chunk index of a store's files up to date.

    One thread at the lowest CPU priority (``nice`` 19) indexes the files
    of the store not indexed yet at :meth:`start`, then each image
    :meth:`landed` reports, and reconciles the index with the store at
    each :meth:`rescan` (entries of vanished files go, changed files are
    indexed again), and indexes the whole store again when the index
    switches to the average chunk size a delta named (:meth:`follow`).
    It pauses while ``busy()`` is true: the agent's downloads never
    share the CPU with it.

    Its thread is the only writer of the database, even of the average
    the deltas name: it holds the database while it indexes a file,
    pauses included, so another thread's write would wait for the
    download that paused it. A switch abandons the file being indexed.

    :param index: the :class:`~precache.agent.chunk_index.ChunkIndex`.
    :param store: the agent's :class:`~precache.agent.stores.base.ImageStore`.
    :param busy: returns True while downloads are in progress.
    """

    _SCAN = object()
    _STOP = object()
    _FOLLOW = object()

    def __init__(self, index, store, busy=lambda: False):
        self.index = index
        self.store = store
        self.busy = busy
        self._queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        #: The average a delta named, not yet taken by the thread.
        self._named = None
        self._warned = set()

    @classmethod
    def from_conf(cls, conf, store, busy=lambda: False):
        """The Indexer ``[chunk_index]`` asks for, or None when disabled."""
        group = conf.chunk_index
        if not group.enabled:
            return None
        try:
            index = chunk_index.ChunkIndex(group.directory,
                                           group.average_chunk_size)
        except (OSError, sqlite3.Error) as exc:
            raise exception.ConfigurationError(
                reason='[chunk_index] directory %s cannot hold the chunk '
                       'index: %s' % (group.directory, exc))
        return cls(index, store, busy)

    def start(self):
        """Start the thread; index the files already in the store."""
        self.rescan()
        self._thread = threading.Thread(target=self._run,
                                        name='chunk-indexer', daemon=True)
        self._thread.start()

    def follow(self, average):
        """A delta about to be downloaded was cut with ``average``.

        Without ``[chunk_index] average_chunk_size``, the thread switches
        the index to it (logged at INFO) and indexes the store again.
        With it set, an ``average`` other than the one set is logged as a
        warning, once per value, and nothing else changes. Either way it
        is kept as the average the deltas name.

        :param average: the delta's average chunk size; None (a delta of
            meta 1.4 names none) changes nothing.
        """
        if average is None:
            return
        configured = self.index.configured
        with self._lock:
            self._named = average
            warn = (configured not in (None, average) and
                    average not in self._warned)
            self._warned.add(average)
        if warn:
            LOG.warning(
                'Chunk index: deltas are cut with an average chunk size of '
                '%(named)d bytes, the index with %(configured)d '
                '([chunk_index] average_chunk_size): it finds none of their '
                'chunks. Unset [chunk_index] average_chunk_size to follow '
                'the deltas, or set it to %(named)d.',
                {'named': average, 'configured': configured})
        self._queue.put(self._FOLLOW)

    def landed(self, path):
        """Index ``path`` (an image just landed there)."""
        self._queue.put(path)

    def rescan(self):
        """Reconcile the index with the files now in the store."""
        self._queue.put(self._SCAN)

    def wait_idle(self, timeout):
        """Wait until everything asked for is done; False on timeout."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks,
                                 timeout)

    def stop(self, timeout=5):
        """Stop the thread, abandoning the file being indexed."""
        self._stopping.set()
        self._queue.put(self._STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        _lower_priority()
        try:
            while not self._stopping.is_set():
                item = self._queue.get()
                try:
                    if item is self._STOP:
                        break
                    self._take_named()
                    if item is self._SCAN:
                        self._scan()
                    elif item is not self._FOLLOW:
                        self._index(item)
                except _Stopping:
                    break
                except _Switching:
                    pass  # The _FOLLOW queued with the average switches.
                except Exception:
                    LOG.exception('Chunk index: %s failed', item)
                finally:
                    self._queue.task_done()
        finally:
            self.index.close()

    def _take_named(self):
        """Keep the average a delta named; switch to it if it is new."""
        with self._lock:
            named, self._named = self._named, None
        if named is None:
            return
        before = self.index.average
        if self.index.named_average() != named:
            self.index.set_named_average(named)
        if self.index.average != before:
            LOG.info('Chunk index: deltas are now cut with an average chunk '
                     'size of %d bytes (was %d); the store is indexed again',
                     named, before)
            self.rescan()

    def _switching(self):
        """Whether a delta named an average the index is to switch to."""
        with self._lock:
            named = self._named
        return (named is not None and self.index.configured is None and
                named != self.index.average)

    def _scan(self):
        present = {}
        for entry in self.store.inventory():
            path = os.path.join(self.store.cache_dir, entry['name'])
            present[path] = entry
        for path in set(self.index.files()) - set(present):
            LOG.info('Chunk index: %s is gone, its entries too', path)
            self.index.remove(path)
        for path in sorted(present):
            self._index(path)

    def _index(self, path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.index.remove(path)
            return
        if self.index.is_current(path, st):
            return
        average = self.index.average
        try:
            count = self.index.add(path, self._pause, average)
        except chunk_index.Changed:
            LOG.info('Chunk index: %s changed while it was indexed; it '
                     'will be indexed again', path)
            self._queue.put(path)
            return
        except OSError as exc:
            LOG.warning('Chunk index: cannot index %s: %s', path, exc)
            return
        if count is not None:
            LOG.info('Chunk index: indexed %s (%d chunks, average size %d)',
                     path, count, average)

    def _pause(self):
        while True:
            if self._stopping.is_set():
                raise _Stopping()
            if self._switching():
                raise _Switching()
            if not self.busy():
                return
            self._stopping.wait(PAUSE_POLL)


class _Stopping(Exception):
    """The indexer is stopping."""


class _Switching(Exception):
    """The index switches to another average: the file can wait."""


def _lower_priority():
    """Give this thread the lowest CPU priority (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as exc:
        LOG.debug('Chunk index: cannot lower the priority: %s', exc)
