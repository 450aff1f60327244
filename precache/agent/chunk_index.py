"""The agent's index of the chunks of the images in its store.

::

    agent start ──► scan the store ─┐          (one thread, lowest CPU
    image landed ──► its path ──────┤          priority, paused while
    keep-alive ──► scan again ──────┼─► queue ─► a download runs)
    delta names a new average ──────┘              │ cut + hash each file
      (follow: scan again)                         ▼ (precache.objects.chunks)
                        ChunkIndex: sqlite in [chunk_index] directory
                                                   │
    Assembler (precache.agent.assembly): a chunk   │ find(digest)
    no longer where the delta says ────────────────┘ pieces(base, range)

This module is the index (:class:`ChunkIndex`); the thread above, which
decides when a file is indexed, is :mod:`precache.agent.chunk_indexer`.

The index lives in the agent's state directory, never in the store: a
file in Nova's ``_base`` is an image, nothing else. Per chunk it keeps
the file, the offset, the length and the first 8 bytes of the chunk's
BLAKE3 digest (about 90 bytes a chunk on disk with sqlite's indexes,
some 18 MB for a 4 GiB image of 16 KiB chunks). It is a hint, never
trusted: whoever reads a chunk through it checks the bytes (the key
here, the full digest of the delta's copy record, the whole image
against Glance's hash).

A file is indexed again when its size or inode changed and its entries
go when it vanishes. Its mtime is recorded but does not invalidate it:
the agent's keep-alive and nova-compute touch base files all the time
without changing a byte. A file rewritten in place keeps its entries
until it is indexed again; readers find its bytes no longer match.

The index must cut files as the service cut the deltas' bases, or it
finds none of their chunks (deltas still land, without its help). So,
unless ``[chunk_index] average_chunk_size`` is set, it follows the
deltas: each ``delta`` source names its average chunk size (meta 1.5,
``chunking``); the last one named is kept in the database (16384 bytes,
the service's default, until a delta names one) and a new one indexes
the store again, in the background, file by file. Until a file is
indexed again its entries are of another average and left out of
lookups. A set ``average_chunk_size`` is the operator's choice and
stays, with a warning when the deltas name another.
"""

import os
import sqlite3
import struct
import threading
import time

from oslo_log import log as logging

from precache.objects import chunks

LOG = logging.getLogger(__name__)

#: Name of the sqlite database in the index directory.
DB_NAME = 'chunks.sqlite'
#: Rows written to sqlite at a time while a file is indexed.
BATCH = 4096
#: Average chunk size until a delta names one: the service's default.
DEFAULT_AVERAGE = 16384
#: The ``settings`` row of the average chunk size the last delta named.
NAMED_AVERAGE = 'named_average'

_KEY = struct.Struct('>q')

_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS files ('
    ' id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,'
    ' dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,'
    ' mtime_ns INTEGER NOT NULL, average INTEGER NOT NULL,'
    ' chunks INTEGER NOT NULL, seconds REAL NOT NULL)',
    'CREATE TABLE IF NOT EXISTS chunks ('
    ' file_id INTEGER NOT NULL, offset INTEGER NOT NULL,'
    ' length INTEGER NOT NULL, key INTEGER NOT NULL,'
    ' PRIMARY KEY (file_id, offset)) WITHOUT ROWID',
    'CREATE INDEX IF NOT EXISTS chunks_key ON chunks (key)',
    'CREATE TABLE IF NOT EXISTS settings ('
    ' name TEXT PRIMARY KEY, value INTEGER NOT NULL)',
)


def key(digest):
    """Return the index's key of a chunk digest (its first 8 bytes)."""
    return _KEY.unpack_from(digest)[0]


def identity(st):
    """What must not change for a file's entries to stay valid."""
    return st.st_dev, st.st_ino, st.st_size


class Changed(Exception):
    """The file changed while it was being indexed."""


class ChunkIndex(object):
    """The chunks of the files indexed so far, in a sqlite database.

    Safe to use from several threads (one connection per thread); one
    thread writes (the :class:`~precache.agent.chunk_indexer.Indexer`),
    the others read. Instances on the same directory share the average
    chunk size the deltas named.

    :param directory: where the database lives (created if needed).
    :param average: the average chunk size files are cut with, as the
        operator set it; None (the default) follows the deltas (see
        :meth:`~precache.agent.chunk_indexer.Indexer.follow`).
    """

    def __init__(self, directory, average=None):
        if average is not None:
            chunks.limits(average)  # Refuse an impossible size at once.
        #: The average chunk size the operator set, or None.
        self.configured = average
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, DB_NAME)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute('PRAGMA journal_mode=WAL')
            for statement in _SCHEMA:
                conn.execute(statement)

    def _connect(self):
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute('PRAGMA synchronous=NORMAL')
            self._local.conn = conn
        return conn

    # The average chunk size ---------------------------------------------

    @property
    def average(self):
        """The average chunk size files are cut and looked up with.

        The one the operator set, else the one the last delta named,
        else :data:`DEFAULT_AVERAGE`. Read from the database each time
        (readers never wait for the writer): the delta source's instance
        sees what the indexer's learnt.
        """
        if self.configured is not None:
            return self.configured
        return self.named_average() or DEFAULT_AVERAGE

    def named_average(self):
        """The average chunk size the last delta named, or None."""
        row = self._connect().execute(
            'SELECT value FROM settings WHERE name = ?',
            (NAMED_AVERAGE,)).fetchone()
        return row[0] if row else None

    def set_named_average(self, average):
        """Keep ``average`` as the one the last delta named.

        A write: by the thread that writes the chunks (the
        :class:`~precache.agent.chunk_indexer.Indexer`'s), which may hold
        the database for as long as a file takes to index.
        """
        chunks.limits(average)
        conn = self._connect()
        with conn:
            conn.execute('INSERT OR REPLACE INTO settings (name, value) '
                         'VALUES (?, ?)', (NAMED_AVERAGE, average))

    # Reading ------------------------------------------------------------

    def files(self):
        """Return ``{path: (dev, ino, size, average)}`` of indexed files."""
        rows = self._connect().execute(
            'SELECT path, dev, ino, size, average FROM files')
        return {row[0]: tuple(row[1:]) for row in rows}

    def is_current(self, path, st):
        """Whether ``path`` (whose stat is ``st``) is indexed as it is."""
        known = self.files().get(path)
        return known == identity(st) + (self.average,)

    def find(self, digest, length):
        """Return ``[(path, offset)]`` of indexed chunks like this one.

        Candidates only: same key and length, in files whose size and
        inode did not change; the caller checks the bytes it reads.
        """
        return self.find_key(key(digest), length)

    def find_key(self, chunk_key, length):
        """:meth:`find` for a chunk's key (see :func:`key`)."""
        rows = self._connect().execute(
            'SELECT f.path, f.dev, f.ino, f.size, c.offset FROM chunks c '
            'JOIN files f ON f.id = c.file_id '
            'WHERE c.key = ? AND c.length = ? AND f.average = ?',
            (chunk_key, length, self.average)).fetchall()
        return [(path, offset) for path, dev, ino, size, offset in rows
                if _unchanged(path, (dev, ino, size))]

    def pieces(self, path, offset, length):
        """Return the chunks of ``path`` that tile ``[offset, +length)``.

        The chunks the file held when it was indexed, even if it changed
        since: the caller looks for them wherever they are now.

        :returns: a list of ``(offset, length, key)``, or None when the
            file is not indexed or its chunks do not start and end exactly
            there.
        """
        conn = self._connect()
        row = conn.execute('SELECT id FROM files WHERE path = ? AND '
                           'average = ?', (path, self.average)).fetchone()
        if row is None:
            return None
        rows = conn.execute(
            'SELECT offset, length, key FROM chunks WHERE file_id = ? AND '
            'offset >= ? AND offset < ? ORDER BY offset',
            (row[0], offset, offset + length)).fetchall()
        at = offset
        for piece_offset, piece_length, _key in rows:
            if piece_offset != at:
                return None
            at += piece_length
        return rows if rows and at == offset + length else None

    # Writing (one thread) -------------------------------------------------

    def add(self, path, pause=None, average=None):
        """Cut and hash the file ``path``; replace its entries.

        :param pause: called between pieces of the file (it may wait).
        :param average: the average chunk size to cut with; the index's
            (:attr:`average`) by default.
        :returns: the number of chunks, or None if the file vanished.
        :raises Changed: the file changed while it was read.
        """
        started = time.monotonic()
        average = average or self.average
        try:
            f = open(path, 'rb')
        except FileNotFoundError:
            self.remove(path)
            return None
        conn = self._connect()
        with f, conn:
            before = os.fstat(f.fileno())
            conn.execute('DELETE FROM chunks WHERE file_id IN '
                         '(SELECT id FROM files WHERE path = ?)', (path,))
            conn.execute('DELETE FROM files WHERE path = ?', (path,))
            file_id = conn.execute(
                'INSERT INTO files (path, dev, ino, size, mtime_ns, average,'
                ' chunks, seconds) VALUES (?, ?, ?, ?, ?, ?, 0, 0)',
                (path,) + identity(before) +
                (before.st_mtime_ns, average)).lastrowid
            count = 0
            batch = []
            for offset, data in chunks.iter_chunks(
                    _Paused(f, pause), average,
                    chunks.small_read_size(average)):
                batch.append((file_id, offset, len(data),
                              key(chunks.digest(data))))
                if len(batch) >= BATCH:
                    conn.executemany('INSERT INTO chunks VALUES (?, ?, ?, ?)',
                                     batch)
                    count += len(batch)
                    batch = []
            conn.executemany('INSERT INTO chunks VALUES (?, ?, ?, ?)', batch)
            count += len(batch)
            after = os.stat(path)
            if (identity(after) != identity(before) or
                    after.st_mtime_ns != before.st_mtime_ns):
                raise Changed(path)
            conn.execute('UPDATE files SET chunks = ?, seconds = ? '
                         'WHERE id = ?',
                         (count, time.monotonic() - started, file_id))
        return count

    def remove(self, path):
        """Forget the file ``path``."""
        conn = self._connect()
        with conn:
            conn.execute('DELETE FROM chunks WHERE file_id IN '
                         '(SELECT id FROM files WHERE path = ?)', (path,))
            conn.execute('DELETE FROM files WHERE path = ?', (path,))

    def close(self):
        """Close this thread's connection."""
        conn = getattr(self._local, 'conn', None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _unchanged(path, known):
    try:
        return identity(os.stat(path)) == known
    except OSError:
        return False


class _Paused(object):
    """A file whose reads first call ``pause``."""

    def __init__(self, fileobj, pause):
        self._file = fileobj
        self._pause = pause

    def read(self, size):
        if self._pause is not None:
            self._pause()
        return self._file.read(size)
