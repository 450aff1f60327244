"""Content-defined chunks of an image: cutting, hashing, the index.

Both daemons cut images the same way, so this module belongs to the
service-agent contract. Boundaries come from FastCDC (the ``fastcdc``
library's compiled chunker): they depend only on the bytes since the
previous boundary, so an insertion moves the boundaries near it and no
others. Each chunk is named by the BLAKE3 digest of its bytes
(:data:`DIGEST_SIZE` bytes).

Files are read in :data:`READ_SIZE` pieces, never whole: the chunk that
straddles the end of a piece is cut again with the next piece, which
gives exactly the boundaries of chunking the whole file at once.

An :class:`Index` lists ``(offset, length, digest)`` of every chunk of a
file; :meth:`Index.encode` packs it (header, then per chunk a 4-byte
length and the digest; offsets follow from the lengths) and compresses
it with zstd.
"""

import struct

import blake3
from fastcdc import fastcdc
import zstandard

#: Bytes of a chunk's digest (BLAKE3, 256 bits).
DIGEST_SIZE = 32
#: Bytes read from a file at a time while chunking.
READ_SIZE = 8 * 1024 * 1024
#: Smallest and largest average chunk sizes: a chunk (at most 8 times the
#: average) fits in one copy record of a delta.
MIN_AVERAGE = 256
MAX_AVERAGE = 512 * 1024

_MAGIC = b'PCIDX1\n'
_HEADER = struct.Struct('>IQ')  # average chunk size, number of chunks
_ENTRY = struct.Struct('>I%ds' % DIGEST_SIZE)


class InvalidIndex(ValueError):
    """Bytes that are not an encoded :class:`Index`."""


def digest(data):
    """Return the digest naming the chunk ``data``."""
    return blake3.blake3(data).digest()


def hasher():
    """Return a new hash object computing :func:`digest` incrementally."""
    return blake3.blake3()


def limits(average):
    """Return ``(min_size, avg_size, max_size)`` for an average size."""
    if not MIN_AVERAGE <= average <= MAX_AVERAGE:
        raise ValueError('average chunk size %d is not within %d-%d'
                         % (average, MIN_AVERAGE, MAX_AVERAGE))
    return average // 4, average, average * 8


def small_read_size(average):
    """A read size for :func:`iter_chunks` that keeps memory low.

    Two largest chunks or 1 MiB, whichever is more: cutting a 4 GiB file
    then adds about 10 MB to a process, against some 40 MB with
    :data:`READ_SIZE` (which is faster on a service host).
    """
    return max(1024 * 1024, 2 * limits(average)[2])


def iter_chunks(fileobj, average, read_size=None):
    """Yield ``(offset, data)`` for each chunk of the file ``fileobj``.

    ``data`` is a memoryview valid until the next chunk is asked for.

    :param fileobj: a binary file open for reading, at its start.
    :param average: the average chunk size (see :func:`limits`).
    :param read_size: bytes read at a time (:data:`READ_SIZE` by
        default); the chunks are the same for any size, but memory grows
        with it (see :func:`small_read_size`).
    """
    min_size, avg_size, max_size = limits(average)
    read_size = read_size or READ_SIZE
    pending = b''
    offset = 0
    while True:
        piece = fileobj.read(read_size)
        eof = not piece
        buf = memoryview(pending + piece) if piece else memoryview(pending)
        if not buf:
            return
        start = 0
        for chunk in fastcdc(buf, min_size, avg_size, max_size):
            if not eof and chunk.offset + max_size > len(buf):
                break  # may end at the piece's end: cut with the next
            yield offset + chunk.offset, buf[chunk.offset:
                                             chunk.offset + chunk.length]
            start = chunk.offset + chunk.length
        offset += start
        pending = bytes(buf[start:])
        if eof:
            return


class Index(object):
    """The chunks of one file, in order.

    :param average: the average chunk size the file was cut with.
    :param entries: list of ``(offset, length, digest)``.
    """

    def __init__(self, average, entries=()):
        self.average = average
        self.entries = list(entries)

    @classmethod
    def of_file(cls, path, average):
        """Cut the file at ``path`` and return its index."""
        with open(path, 'rb') as f:
            return cls(average, [(offset, len(data), digest(data))
                                 for offset, data in iter_chunks(f, average)])

    @property
    def size(self):
        """The size of the file the index describes."""
        if not self.entries:
            return 0
        offset, length, _digest = self.entries[-1]
        return offset + length

    def locations(self):
        """Return ``{digest: (offset, length)}``, first occurrence wins."""
        found = {}
        for offset, length, name in self.entries:
            found.setdefault(name, (offset, length))
        return found

    def encode(self):
        """Return the index as compressed bytes (see the module doc)."""
        parts = [_MAGIC, _HEADER.pack(self.average, len(self.entries))]
        parts.extend(_ENTRY.pack(length, name)
                     for _offset, length, name in self.entries)
        return zstandard.ZstdCompressor(level=3).compress(b''.join(parts))

    @classmethod
    def decode(cls, blob):
        """Return the index that :meth:`encode` made ``blob`` from.

        :raises InvalidIndex: ``blob`` is not such bytes.
        """
        try:
            raw = zstandard.ZstdDecompressor().decompress(blob)
        except zstandard.ZstdError as exc:
            raise InvalidIndex('not a zstd frame: %s' % exc)
        head = len(_MAGIC) + _HEADER.size
        if raw[:len(_MAGIC)] != _MAGIC or len(raw) < head:
            raise InvalidIndex('not a chunk index')
        average, count = _HEADER.unpack_from(raw, len(_MAGIC))
        if len(raw) != head + count * _ENTRY.size:
            raise InvalidIndex('%d bytes for %d chunks' % (len(raw), count))
        entries = []
        offset = 0
        for length, name in _ENTRY.iter_unpack(raw[head:]):
            entries.append((offset, length, name))
            offset += length
        return cls(average, entries)
