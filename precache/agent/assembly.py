"""Assembling an image from a local base image and a delta artifact.

::

    delta source ──► zstd ──► Assembler ──► hash + sparse write
    (http stream)             │  copy record: read the base file,
                              │  check the chunk's digest
                              └─ data record: the bytes themselves

The Assembler is the "decompressor" of the ``delta`` source (see
:meth:`precache.agent.sources.base.ImageSource.decoder`): the Downloader
verifies the assembled bytes against Glance's hash and the store lands
them exactly as a full download (lock, inspection, raw conversion,
atomic rename). A base file that is missing, shorter, or whose bytes
differ from the digests in the delta fails the source with
:class:`~precache.common.exception.BaseUnusable`: the Downloader then
tries the next source, the full artifact.
"""

from precache.common import compression
from precache.common import exception
from precache.objects import chunks
from precache.objects import delta


class Assembler(object):
    """Writes the image a decompressed delta describes into ``sink``.

    :param image: the :class:`~precache.objects.image.ImageRecord` being
        assembled.
    :param base_id: the id of the base image.
    :param base_path: the path of the base image's file in the store.
    :param sink: has ``write(bytes)``: receives the image's bytes in order.
    :raises BaseUnusable: the base file cannot be opened.
    """

    def __init__(self, image, base_id, base_path, sink):
        self.image = image
        self.base_id = base_id
        self.sink = sink
        self.written = 0
        self.copied = 0
        self._parser = delta.Parser()
        try:
            self._base = open(base_path, 'rb')
        except OSError as exc:
            raise self._unusable('%s: %s' % (base_path, exc.strerror))

    def write(self, data):
        """Take the next decompressed bytes of the delta."""
        try:
            records = self._parser.feed(data)
        except delta.InvalidDelta as exc:
            raise self._corrupt(exc)
        for record in records:
            if record[0] == delta.COPY:
                self._copy(*record[1:])
            elif record[0] == delta.DATA:
                self.sink.write(record[1])
                self.written += len(record[1])
            elif record[1] != self.written:
                raise self._corrupt('it ends at %d bytes, after %d were '
                                    'written' % (record[1], self.written))

    def close(self):
        """Check that the delta ended; close the base file."""
        self._base.close()
        try:
            self._parser.close()
        except delta.InvalidDelta as exc:
            raise self._corrupt(exc)

    def _copy(self, offset, length, name):
        try:
            self._base.seek(offset)
            data = self._base.read(length)
        except OSError as exc:
            raise self._unusable('reading %d bytes at offset %d failed: %s'
                                 % (length, offset, exc))
        if len(data) != length:
            raise self._unusable('it has no %d bytes at offset %d (changed '
                                 'since it was indexed?)' % (length, offset))
        if chunks.digest(data) != name:
            raise self._unusable('its bytes at offset %d differ from the '
                                 'base the delta was made from' % offset)
        self.sink.write(data)
        self.written += length
        self.copied += length

    def _unusable(self, reason):
        self._close_base()
        return exception.BaseUnusable(image_id=self.image.id,
                                      base_id=self.base_id, reason=reason)

    def _corrupt(self, reason):
        self._close_base()
        return exception.CorruptStream(compression='delta', reason=reason)

    def _close_base(self):
        base = getattr(self, '_base', None)
        if base is not None:
            base.close()


class Decoder(object):
    """Decompresses a delta artifact into an :class:`Assembler`.

    :param assembler: the :class:`Assembler` fed the decompressed bytes.
    :param algorithm: the artifact's compression.
    :param write_size: largest piece handed to the assembler.
    """

    def __init__(self, assembler, algorithm, write_size):
        self.assembler = assembler
        self._unpack = compression.decompressor(algorithm, assembler,
                                                write_size)

    def write(self, data):
        self._unpack.write(data)

    def close(self):
        """Finish decompressing; check that the delta was whole."""
        self._unpack.close()
        self.assembler.close()
