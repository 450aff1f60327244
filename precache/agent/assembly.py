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

With the agent's chunk index (:mod:`precache.agent.chunk_index`), a
copy record whose bytes the base no longer holds at its offset is
looked for first: as one chunk anywhere in the indexed store, else as
the chunks the index recorded for that range of the base, each taken
from the base or from any indexed file holding it. What is found must
have the record's digest; only when nothing is found does the source
fail.
"""

import sqlite3

from oslo_log import log as logging

from precache.agent import chunk_index
from precache.common import compression
from precache.common import exception
from precache.objects import chunks
from precache.objects import delta

LOG = logging.getLogger(__name__)


class Assembler(object):
    """Writes the image a decompressed delta describes into ``sink``.

    :param image: the :class:`~precache.objects.image.ImageRecord` being
        assembled.
    :param base_id: the id of the base image.
    :param base_path: the path of the base image's file in the store.
    :param sink: has ``write(bytes)``: receives the image's bytes in order.
    :param index: the agent's
        :class:`~precache.agent.chunk_index.ChunkIndex`, or None.
    :raises BaseUnusable: the base file cannot be opened.
    """

    def __init__(self, image, base_id, base_path, sink, index=None):
        self.image = image
        self.base_id = base_id
        self.base_path = base_path
        self.sink = sink
        self.index = index
        self.written = 0
        #: Image bytes taken from local files (the base and others).
        self.copied = 0
        #: Of those, bytes found through the chunk index.
        self.relocated = 0
        self._parser = delta.Parser()
        self._others = {}
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
        self._close_base()
        try:
            self._parser.close()
        except delta.InvalidDelta as exc:
            raise self._corrupt(exc)

    def _copy(self, offset, length, name):
        data, reason = _read(self._base, offset, length)
        if data is not None and chunks.digest(data) != name:
            data, reason = None, ('its bytes at offset %d differ from the '
                                  'base the delta was made from' % offset)
        if data is None and self.index is not None:
            try:
                data = self._relocate(offset, length, name)
            except sqlite3.Error as exc:
                reason += '; the chunk index failed: %s' % exc
            if data is not None:
                self.relocated += length
        if data is None:
            raise self._unusable(reason)
        self.sink.write(data)
        self.written += length
        self.copied += length

    def _relocate(self, offset, length, name):
        """The bytes of a copy record found through the index, or None."""
        for path, where in self.index.find(name, length):
            data = self._read_other(path, where, length)
            if data is not None and chunks.digest(data) == name:
                return data
        pieces = self.index.pieces(self.base_path, offset, length)
        if pieces is None:
            return None
        found = bytearray()
        for piece_offset, piece_length, key in pieces:
            data = self._piece(piece_offset, piece_length, key)
            if data is None:
                return None
            found += data
        return bytes(found) if chunks.digest(found) == name else None

    def _piece(self, offset, length, key):
        """One chunk of the base's range: from the base, else elsewhere."""
        data, _reason = _read(self._base, offset, length)
        if data is not None and _key_of(data) == key:
            return data
        for path, where in self.index.find_key(key, length):
            data = self._read_other(path, where, length)
            if data is not None and _key_of(data) == key:
                return data
        return None

    def _read_other(self, path, offset, length):
        other = self._others.get(path)
        if other is None:
            try:
                other = self._others[path] = open(path, 'rb')
            except OSError:
                return None
        return _read(other, offset, length)[0]

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
        for other in self._others.values():
            other.close()
        self._others.clear()


def _read(fileobj, offset, length):
    """Return ``(bytes, None)``, or ``(None, why)`` if some are missing."""
    try:
        fileobj.seek(offset)
        data = fileobj.read(length)
    except OSError as exc:
        return None, ('reading %d bytes at offset %d failed: %s'
                      % (length, offset, exc))
    if len(data) != length:
        return None, ('it has no %d bytes at offset %d (changed since it '
                      'was indexed?)' % (length, offset))
    return data, None


def _key_of(data):
    return chunk_index.key(chunks.digest(data))


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
        assembler = self.assembler
        LOG.info('Image %(image)s: %(copied)d bytes taken from local files '
                 '(base %(base)s), %(relocated)d of them found elsewhere '
                 'through the chunk index', {
                     'image': assembler.image.id, 'base': assembler.base_id,
                     'copied': assembler.copied,
                     'relocated': assembler.relocated})
