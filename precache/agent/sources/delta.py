"""The ``delta`` source: a new image from a base this host holds.

A ``delta`` source (see :mod:`precache.objects.meta`, version 1.3)
names a base image (``base``: its id and Glance hash) and the URL of a
delta artifact (:mod:`precache.objects.delta`) made against that base.
The artifact travels like a full ``http`` artifact (same proxies, same
origin checks: this plugin is the ``http`` source with another
decoder); :class:`~precache.agent.assembly.Assembler` rebuilds the image
from the base file in the store and the artifact.

A host that does not hold the base fails this source at once, before
any byte travels, and the Downloader tries the next source: the full
artifact. Agents older than meta 1.3 have no ``delta`` plugin and skip
the source the same way.
"""

import os
import sqlite3

from oslo_log import log as logging

from precache.agent import assembly
from precache.agent import chunk_index
from precache.agent.sources import http
from precache.common import compression
from precache.common import plugin
from precache.objects import image as image_mod

LOG = logging.getLogger(__name__)


class DeltaSource(http.HTTPSource):
    """Downloads a delta artifact over HTTP and assembles the image."""

    method = 'delta'

    def __init__(self, conf):
        super().__init__(conf)
        self._store = None
        self._index = None

    @property
    def store(self):
        """The agent's store (``[agent] store``), to find base files in."""
        if self._store is None:
            self._store = plugin.load_plugin(
                'precache.stores', self.conf.agent.store, self.conf,
                option='[agent] store')
        return self._store

    @property
    def index(self):
        """The agent's chunk index (``[chunk_index]``), or None.

        An index that cannot be opened is logged and done without: the
        base alone serves the delta.
        """
        if self._index is None and self.conf.chunk_index.enabled:
            try:
                self._index = chunk_index.ChunkIndex(
                    self.conf.chunk_index.directory,
                    self.conf.chunk_index.average_chunk_size)
            except (OSError, sqlite3.Error) as exc:
                LOG.warning('Assembling deltas without the chunk index: '
                            '[chunk_index] directory %s: %s',
                            self.conf.chunk_index.directory, exc)
        return self._index

    def locator(self, source):
        return '%s (base %s)' % (super().locator(source),
                                 source['base']['id'])

    def decoder(self, image, source, sink, write_size):
        base_id = source['base']['id']
        base = image_mod.ImageRecord(id=base_id)
        path = self.store.path(base)
        if not os.path.isfile(path):
            raise self.failed(image, source, 'this host does not hold base '
                              'image %s' % base_id)
        return assembly.Decoder(
            assembly.Assembler(image, base_id, path, sink, self.index),
            source.get('compression') or compression.NONE, write_size)
