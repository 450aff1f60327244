"""Writing image bytes so that runs of zeros become holes.

Nova's base images are mostly empty space; writing those zeros would cost
disk bandwidth and, on a file system without deduplication, disk space.
:class:`SparseWriter` seeks over every block of zeros instead, and its
:meth:`~SparseWriter.close` sets the file's final length so that a
trailing run of zeros is a hole too.
"""

#: Size of the blocks checked for zeros; a multiple of every common file
#: system block size, so that a skipped block is a whole hole.
BLOCK_SIZE = 64 * 1024


class LimitExceeded(Exception):
    """A write would make the file longer than the writer's limit.

    :ivar limit: the limit, in bytes.
    :ivar size: the length the file would have had.
    """

    def __init__(self, limit, size):
        super().__init__('%d bytes would pass the limit of %d'
                         % (size, limit))
        self.limit = limit
        self.size = size


class SparseWriter(object):
    """Write bytes to ``fileobj`` from offset 0, leaving holes for zeros.

    :param fileobj: a seekable binary file open for writing, empty.
    :param block_size: blocks (aligned to the file offset) made only of
        zeros are skipped rather than written.
    :param limit: the file's length may not pass this many bytes: a write
        that would make it longer writes nothing and raises
        :class:`LimitExceeded`. None means no limit.
    """

    def __init__(self, fileobj, block_size=BLOCK_SIZE, limit=None):
        self._file = fileobj
        self._block_size = block_size
        self._zeros = bytes(block_size)
        self._limit = limit
        #: Bytes accounted for so far: the file's length after close().
        self.size = 0
        self._file_pos = 0

    def write(self, data):
        """Append ``data`` (bytes-like) to the file.

        :raises LimitExceeded: the file would pass the limit.
        """
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        length = len(data)
        if self._limit is not None and self.size + length > self._limit:
            raise LimitExceeded(self._limit, self.size + length)
        block = self._block_size
        pos = self.size
        start = 0
        run_start = None  # start (in data) of the pending run to write
        while start < length:
            end = min(length, start + block - (pos + start) % block)
            if self._is_zero(data, start, end):
                if run_start is not None:
                    self._write_at(pos + run_start, data, run_start, start)
                    run_start = None
            elif run_start is None:
                run_start = start
            start = end
        if run_start is not None:
            self._write_at(pos + run_start, data, run_start, length)
        self.size = pos + length

    def _is_zero(self, data, start, end):
        zeros = self._zeros
        if end - start != len(zeros):
            zeros = memoryview(zeros)[:end - start]
        return data.startswith(zeros, start)

    def _write_at(self, offset, data, start, end):
        if offset != self._file_pos:
            self._file.seek(offset)
        self._file.write(memoryview(data)[start:end])
        self._file_pos = offset + end - start

    def close(self):
        """Give the file its final length and flush it.

        :returns: the file's length in bytes.
        """
        self._file.truncate(self.size)
        self._file.flush()
        return self.size
