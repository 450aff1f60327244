"""The service's chunk indexes of served images, as the hosts hold them.

A delta must name chunks of the file a host has in its store. Agents
convert images to raw when they land them (Nova's ``force_raw_images``,
``[delta] hosts_hold_raw``), so an image that is not raw is indexed in
its raw form: converted by ``qemu-img`` into a temporary file beside the
index, cut, and the temporary file removed.

Layout: ``[delta] index_dir/<image id>/<first 16 hex digits of the
image's hash>.idx``, the encoded :class:`~precache.objects.chunks.Index`;
an image's older versions' indexes are removed when a new one is saved.
"""

import os
import subprocess
import time

from oslo_log import log as logging

from precache.common import exception
from precache.common import fileutils
from precache.objects import chunks

LOG = logging.getLogger(__name__)

EXTENSION = '.idx'


class ChunkIndexes(object):
    """Keeps the chunk index of every served image.

    :param conf: the process's ConfigOpts (``[delta]``).
    """

    def __init__(self, conf):
        self.options = conf.delta

    def _directory(self, image_id):
        if '/' in image_id or image_id.startswith('.'):
            raise exception.ServeFailed(
                image_id=image_id, reason='its id is not a valid file name')
        return os.path.join(self.options.index_dir, image_id)

    def load(self, image_id):
        """Return ``(hash prefix, Index)`` of an image, or None."""
        directory = self._directory(image_id)
        try:
            names = [n for n in os.listdir(directory)
                     if n.endswith(EXTENSION)]
        except FileNotFoundError:
            return None
        for name in names:
            try:
                with open(os.path.join(directory, name), 'rb') as f:
                    index = chunks.Index.decode(f.read())
            except (OSError, chunks.InvalidIndex) as exc:
                LOG.warning('Ignoring the chunk index %s of image %s: %s',
                            name, image_id, exc)
                continue
            return name[:-len(EXTENSION)], index
        return None

    def ensure(self, image, path):
        """Index ``image`` (staged at ``path``) unless it is indexed.

        :returns: its :class:`~precache.objects.chunks.Index`.
        """
        prefix = hash_prefix(image)
        known = self.load(image.id)
        if known and known[0] == prefix:
            return known[1]
        directory = self._directory(image.id)
        os.makedirs(directory, exist_ok=True)
        started = time.monotonic()
        if self.options.hosts_hold_raw and image.disk_format != 'raw':
            index = self._index_raw_form(image, path, directory)
        else:
            index = chunks.Index.of_file(path, self.options.average_chunk_size)
        final = os.path.join(directory, prefix + EXTENSION)
        with fileutils.atomic_write(final) as out:
            out.write(index.encode())
        for name in os.listdir(directory):
            if name != prefix + EXTENSION and not name.startswith(
                    fileutils.TEMP_PREFIX):
                fileutils.remove_quietly(os.path.join(directory, name))
        LOG.info('Indexed image %s: %d chunks, %d bytes in %.1f s',
                 image.id, len(index.entries), index.size,
                 time.monotonic() - started)
        return index

    def _index_raw_form(self, image, path, directory):
        raw = os.path.join(directory, fileutils.TEMP_PREFIX + 'raw')
        try:
            subprocess.run(
                ['qemu-img', 'convert', '-f', image.disk_format, '-O', 'raw',
                 path, raw],
                check=True, capture_output=True,
                timeout=self.options.convert_timeout)
            return chunks.Index.of_file(raw, self.options.average_chunk_size)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, 'stderr', None) or exc
            raise exception.ServeFailed(
                image_id=image.id,
                reason='qemu-img could not convert it to raw for its chunk '
                       'index: %s' % detail)
        finally:
            fileutils.remove_quietly(raw)


def hash_prefix(image):
    """The first 16 hex digits of the image's hash: names its version."""
    _algo, value = image.verification
    return (value or '')[:16].lower()
