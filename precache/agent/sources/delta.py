"""The ``delta`` source: a new image from a base this host holds.

A ``delta`` source (see :mod:`precache.objects.meta`, versions 1.3 to
1.5) names a base image (``base``: its id) and a delta artifact
(:mod:`precache.objects.delta`) made against that base, and the
``transport`` that carries the artifact: ``http`` (the default, as in
meta 1.3), ``bittorrent`` or ``swift``, with that transport's fields
(URL, torrent, TempURL). This plugin streams the artifact through the
agent's own plugin of that transport (the Downloader's instance, so a
delta joins the agent's BitTorrent session and seeds like any torrent,
and goes through the same proxies and origin checks as a full
artifact); :class:`~precache.agent.assembly.Assembler` rebuilds the image
from the base file in the store and the artifact.

A host that does not hold the base fails this source at once, before
any byte travels, and the Downloader tries the next source (the delta
over another transport, in the end the full artifact). Agents older
than meta 1.3 have no ``delta`` plugin and skip the source the same way.

The source's ``chunking`` (meta 1.5) is not the transport's either: the
agent's chunk index follows it (see :mod:`precache.agent.chunk_index`)
before the download starts.
"""

import os
import sqlite3
import threading

from oslo_log import log as logging

from precache.agent import assembly
from precache.agent import chunk_index
from precache.agent.sources import base as base_mod
from precache.common import compression
from precache.common import exception
from precache.common import plugin
from precache.objects import image as image_mod

LOG = logging.getLogger(__name__)
#: The transport of a ``delta`` source that names none (meta 1.3).
DEFAULT_TRANSPORT = 'http'
#: Fields of a ``delta`` source that are not its transport's.
_OWN_FIELDS = ('transport', 'base', 'chunking')


class DeltaSource(base_mod.ImageSource):
    """Streams a delta artifact by its transport; assembles the image."""

    method = 'delta'

    def __init__(self, conf):
        super().__init__(conf)
        self._store = None
        self._index = None
        self._lock = threading.Lock()
        #: Transport plugins loaded here when no Downloader lent its own.
        self._own = {}

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
        base alone serves the delta. Like the indexer's, it looks chunks
        up with the average chunk size set or the one the deltas named.
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

    def transport(self, image, source):
        """Return ``(plugin, source dict)`` of the source's transport.

        :raises SourceFailed: the transport is unknown here, or is
            ``delta`` itself.
        """
        method = source.get('transport') or DEFAULT_TRANSPORT
        if method == self.method:
            raise self.failed(image, source, 'a delta cannot travel as a '
                                             'delta')
        found = self._plugin(method)
        if found is None:
            raise self.failed(image, source, 'no source plugin of its '
                                             'transport %s here' % method)
        carried = {k: v for k, v in source.items() if k not in _OWN_FIELDS}
        carried['method'] = method
        return found, carried

    def _plugin(self, method):
        """The Downloader's plugin of ``method``, or one loaded here."""
        if self.siblings is not None:
            return self.sibling(method)
        with self._lock:
            if method not in self._own:
                try:
                    self._own[method] = plugin.load_plugin(
                        'precache.sources', method, self.conf)
                except (exception.PluginNotFound,
                        exception.ConfigurationError):
                    self._own[method] = None
            return self._own[method]

    def locator(self, source):
        method = source.get('transport') or DEFAULT_TRANSPORT
        found = self._plugin(method) if method != self.method else None
        # The transport's locator keeps its secrets (a TempURL's
        # signature) out of messages.
        where = found.locator(dict(source, method=method)) if found else '-'
        return '%s %s (base %s)' % (method, where, source['base']['id'])

    #: Passed on to a transport that receives ahead (BitTorrent).
    receives_ahead = True

    def iter_chunks(self, image, source, progress=None):
        transport, carried = self.transport(image, source)
        if progress is not None and transport.receives_ahead:
            yield from transport.iter_chunks(image, carried,
                                             progress=progress)
        else:
            yield from transport.iter_chunks(image, carried)

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

    def close(self):
        """Close the transport plugins loaded here (not the lent ones)."""
        with self._lock:
            own, self._own = self._own, {}
        for transport in own.values():
            if transport is not None:
                transport.close()
