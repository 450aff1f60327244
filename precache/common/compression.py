"""Streaming compression and decompression: ``none``, ``gzip``, ``zstd``.

Both directions work chunk by chunk with bounded memory, so an image of
any size passes through without being held whole.
"""

import zlib

import zstandard

from precache.common import exception

NONE = 'none'
GZIP = 'gzip'
ZSTD = 'zstd'
ALGORITHMS = (NONE, GZIP, ZSTD)

#: File name suffix of an artifact compressed with each algorithm.
SUFFIXES = {NONE: '', GZIP: '.gz', ZSTD: '.zst'}


class _Identity(object):
    def process(self, data):
        return data

    def finish(self):
        return b''


class _GzipCompressor(object):
    def __init__(self, level):
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def process(self, data):
        return self._z.compress(data)

    def finish(self):
        return self._z.flush()


class _ZstdCompressor(object):
    def __init__(self, level, threads):
        cctx = zstandard.ZstdCompressor(level=level, threads=threads)
        self._z = cctx.compressobj()

    def process(self, data):
        return self._z.compress(data)

    def finish(self):
        return self._z.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class _GzipDecompressor(object):
    """Push-style gzip decompression with bounded output chunks."""

    def __init__(self, sink, write_size):
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._sink = sink
        self._write_size = write_size

    def write(self, data):
        while data:
            out = self._z.decompress(data, self._write_size)
            if out:
                self._sink.write(out)
            data = self._z.unconsumed_tail
            if self._z.eof:
                break

    def close(self):
        if not self._z.eof:
            raise exception.CorruptStream(
                compression=GZIP,
                reason='it ended before its end marker (truncated)')


class _ZstdDecompressor(object):
    """Push-style zstd decompression with bounded output chunks."""

    def __init__(self, sink, write_size):
        dctx = zstandard.ZstdDecompressor()
        self._writer = dctx.stream_writer(sink, write_size=write_size,
                                          write_return_read=True,
                                          closefd=False)

    def write(self, data):
        self._writer.write(data)

    def close(self):
        self._writer.flush()
        self._writer.close()


class _PassThrough(object):
    def __init__(self, sink, write_size):
        self._sink = sink

    def write(self, data):
        self._sink.write(data)

    def close(self):
        pass


def compressor(algorithm, level=None, threads=0):
    """Return an object with ``process(bytes) -> bytes`` and ``finish()``.

    :param algorithm: one of :data:`ALGORITHMS`.
    :param level: compression level; the algorithm's default when None.
    :param threads: zstd worker threads (-1: one per CPU, 0: none).
    """
    if algorithm == NONE:
        return _Identity()
    if algorithm == GZIP:
        return _GzipCompressor(6 if level is None else level)
    if algorithm == ZSTD:
        return _ZstdCompressor(3 if level is None else level, threads)
    raise ValueError('unknown compression %r' % algorithm)


def decompressor(algorithm, sink, write_size=1024 * 1024):
    """Return a writer that decompresses into ``sink``.

    The writer has ``write(compressed_bytes)`` and ``close()``; ``sink``
    receives the decompressed bytes through its ``write()`` in chunks of at
    most ``write_size`` bytes, so a highly compressed stream (zero runs)
    never expands in memory. ``close()`` raises
    :class:`~precache.common.exception.CorruptStream` when a gzip stream
    was truncated; a truncated zstd stream shows as missing bytes, which
    the size and hash verification catch.
    """
    if algorithm == NONE:
        return _PassThrough(sink, write_size)
    if algorithm == GZIP:
        return _GzipDecompressor(sink, write_size)
    if algorithm == ZSTD:
        return _ZstdDecompressor(sink, write_size)
    raise ValueError('unknown compression %r' % algorithm)
