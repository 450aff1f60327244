"""The delta artifact: a new image as chunks of a base plus new bytes.

The service writes it (:class:`Writer`), the agent reads it as it
streams in (:class:`Parser`). Before compression (zstd, like the full
artifacts) it is::

    b'PCDELTA1\\n'
    record*          each one of:
      b'C' offset:u64 length:u32 digest:32 bytes   copy a chunk of the base
      b'D' length:u32 data                          new bytes
    b'E' size:u64                                   end; the image's size

The digest of a copy record is the BLAKE3 digest of the base's bytes
at ``[offset, offset + length)`` (see :mod:`precache.objects.chunks`);
chunks that follow each other in the base make one copy record of up to
:data:`MAX_COPY` bytes, hashed as one. The agent checks the digest
as it reads its base file, so a base that changed
never ends up in the image. The artifact's own size and sha256 are in
the signed meta, and the assembled image is verified against Glance's
hash, as every image is.
"""

import struct

from precache.objects import chunks

MAGIC = b'PCDELTA1\n'
COPY = b'C'
DATA = b'D'
END = b'E'
#: Largest length of one data record: the parser buffers a record whole.
MAX_DATA = 4 * 1024 * 1024
#: Largest length of one copy record: the agent reads it whole.
MAX_COPY = 4 * 1024 * 1024

_COPY = struct.Struct('>QI%ds' % chunks.DIGEST_SIZE)
_DATA = struct.Struct('>I')
_END = struct.Struct('>Q')


class InvalidDelta(ValueError):
    """The bytes do not follow the delta format."""


class Writer(object):
    """Writes delta records to ``out`` (a file-like with ``write``).

    Consecutive new bytes are merged into data records of up to
    :data:`MAX_DATA` bytes.
    """

    def __init__(self, out):
        self.out = out
        self.size = 0
        self.copied = 0
        self._data = bytearray()
        self._run = None  # [offset, length, hasher] of the copy run
        out.write(MAGIC)

    def copy(self, offset, data):
        """Add ``data``, which the base holds at ``offset``."""
        self._flush()
        run = self._run
        if (run is None or run[0] + run[1] != offset or
                run[1] + len(data) > MAX_COPY):
            self._end_run()
            run = self._run = [offset, 0, chunks.hasher()]
        run[1] += len(data)
        run[2].update(data)
        self.size += len(data)
        self.copied += len(data)

    def data(self, data):
        """Add new bytes."""
        self._end_run()
        self._data += data
        self.size += len(data)
        while len(self._data) >= MAX_DATA:
            self._flush(MAX_DATA)

    def finish(self):
        """Write the end record."""
        self._end_run()
        self._flush()
        self.out.write(END + _END.pack(self.size))

    def _end_run(self):
        if self._run is not None:
            offset, length, digest = self._run
            self.out.write(COPY + _COPY.pack(offset, length,
                                             digest.digest()))
            self._run = None

    def _flush(self, limit=None):
        if not self._data:
            return
        length = len(self._data) if limit is None else limit
        self.out.write(DATA + _DATA.pack(length))
        self.out.write(self._data[:length])
        del self._data[:length]


class Parser(object):
    """Turns the decompressed delta, fed in pieces, into records.

    :meth:`feed` returns the records complete so far:
    ``(COPY, offset, length, digest)``, ``(DATA, bytes)`` or
    ``(END, size)``.
    """

    def __init__(self):
        self._buf = bytearray()
        self._started = False
        self.ended = False

    def feed(self, data):
        self._buf += data
        records = []
        if not self._started:
            if len(self._buf) < len(MAGIC):
                return records
            if bytes(self._buf[:len(MAGIC)]) != MAGIC:
                raise InvalidDelta('the artifact is not a precache delta')
            del self._buf[:len(MAGIC)]
            self._started = True
        while self._buf:
            if self.ended:
                raise InvalidDelta('bytes after the end record')
            record, used = self._next()
            if record is None:
                break
            del self._buf[:used]
            records.append(record)
        return records

    def close(self):
        """Check that the delta ended properly."""
        if not self.ended or self._buf:
            raise InvalidDelta('the delta is truncated')

    def _next(self):
        kind = bytes(self._buf[:1])
        if kind == COPY:
            if len(self._buf) < 1 + _COPY.size:
                return None, 0
            offset, length, name = _COPY.unpack_from(self._buf, 1)
            if length > MAX_COPY:
                raise InvalidDelta('a copy record of %d bytes' % length)
            return (COPY, offset, length, name), 1 + _COPY.size
        if kind == DATA:
            if len(self._buf) < 1 + _DATA.size:
                return None, 0
            (length,) = _DATA.unpack_from(self._buf, 1)
            if length > MAX_DATA:
                raise InvalidDelta('a data record of %d bytes' % length)
            end = 1 + _DATA.size + length
            if len(self._buf) < end:
                return None, 0
            return (DATA, bytes(self._buf[1 + _DATA.size:end])), end
        if kind == END:
            if len(self._buf) < 1 + _END.size:
                return None, 0
            self.ended = True
            return (END, _END.unpack_from(self._buf, 1)[0]), 1 + _END.size
        raise InvalidDelta('unknown record type %r' % kind)


def write_delta(new_file, base_index, out):
    """Write the delta of the file ``new_file`` against a base's index.

    :param new_file: binary file open for reading at its start.
    :param base_index: the base's :class:`~precache.objects.chunks.Index`.
    :param out: where the (uncompressed) delta goes.
    :returns: the :class:`Writer` (its ``size`` and ``copied`` bytes).
    """
    known = base_index.locations()
    writer = Writer(out)
    for _offset, data in chunks.iter_chunks(new_file, base_index.average):
        name = chunks.digest(data)
        where = known.get(name)
        if where is not None and where[1] == len(data):
            writer.copy(where[0], data)
        else:
            writer.data(data)
    writer.finish()
    return writer
