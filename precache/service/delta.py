"""Delta artifacts: a new image as the chunks an older one lacks.

::

    served image ──► ChunkIndexes.ensure (its index, as hosts hold it)
         │
         ├─ base = the image of the same name that most hosts hold
         │         (host inventories in the database), indexed too
         ▼
    delta.write_delta(image bytes, base index) ──► zstd ──► the server's
         ▼                                   extra_artifact_path
    server.serve_extra: its transports' sources (http, bittorrent + http,
         ▼              swift [+ http]), each made a delta source:
    {"method": "delta", "transport": "bittorrent", "base": {"id": ...},
     "chunking": {"average": 16384}, <the transport's fields>}
     put before the full artifact's sources

The delta artifact (``<hash prefix>.delta-<base hash prefix>.zst``) is
an extra artifact of the image (see
:mod:`precache.service.servers.base`): the ImageServer publishes it
through the same transports as the full artifact (the ``http`` server
and the proxies in front of it, the ``bittorrent`` server's own torrent
with the http web seed, the ``swift`` server's object and TempURL). A
host that lacks the base, or whose copy changed, falls back to the next
source: in the end the full artifact. A delta that would not be smaller
than the full artifact is not offered.

Each ``delta`` source names the average chunk size its copy records were
cut with (the base's index's, ``chunking``, meta 1.5): agents cut their
own chunk index of the store alike, so that no option has to be kept
equal on both sides by hand.
"""

import hashlib
import json
import os
import time

from oslo_log import log as logging
import zstandard

from precache.common import exception
from precache.common import fileutils
from precache.objects import delta as delta_format
from precache.objects import states
from precache.service import chunk_indexes
from precache.service.servers import base as servers_base

LOG = logging.getLogger(__name__)

METHOD = 'delta'
HASH_ALGO = 'sha256'
SUFFIX = '.zst'
#: Between the image's hash prefix and the base's in a delta's name.
INFIX = '.delta-'
#: Before the name of a delta's record, beside it.
RECORD_PREFIX = '.'


class DeltaPublisher(object):
    """Adds a ``delta`` source to the sources of a served image.

    :param conf: the process's ConfigOpts (``[delta]``).
    :param db: the :class:`~precache.db.api.StateDB` (inventories).
    :param server: the ImageServer; it must carry extra artifacts
        (``http``, ``bittorrent``, ``swift``).
    :raises ConfigurationError: the server cannot serve deltas.
    """

    def __init__(self, conf, db, server):
        if not server.carries_extra_artifacts:
            raise exception.ConfigurationError(
                reason='[delta] enabled needs a server that carries extra '
                       'artifacts (http, bittorrent or swift) as [service] '
                       'server, not %s' % conf.service.server)
        self.options = conf.delta
        self.db = db
        self.server = server
        self.indexes = chunk_indexes.ChunkIndexes(conf)

    def add_sources(self, image, path, sources):
        """Return ``sources`` with a delta source first, when one helps.

        Never fails the image: a delta that cannot be made is logged and
        the full sources are returned.
        """
        if path is None:
            return sources
        try:
            self.indexes.ensure(image, path)
            base = self.choose_base(image)
            if base is None:
                return sources
            deltas = self._publish(image, path, *base)
        except exception.PrecacheException as exc:
            LOG.warning('No delta for image %s: %s', image.id, exc)
            return sources
        except Exception:
            LOG.exception('No delta for image %s: building it failed',
                          image.id)
            return sources
        if not deltas:
            return sources
        full = min((s.get('size') for s in sources
                    if s.get('size') is not None), default=None)
        size = deltas[0]['size']
        if full is not None and size >= full:
            LOG.info('Image %s: the delta against %s (%d bytes) is not '
                     'smaller than the full artifact (%d bytes)', image.id,
                     base[0], size, full)
            return sources
        return deltas + list(sources)

    def choose_base(self, image):
        """Return ``(base id, hash prefix, index)`` or None.

        The base is an indexed image of the same name as ``image`` that
        hosts hold (cached or existing), the one most hosts hold.
        """
        if not image.name:
            return None
        best = None
        for row in self.db.list_images():
            if row['id'] == image.id or row['name'] != image.name:
                continue
            holders = sum(1 for host in self.db.image_hosts(row['id'])
                          .values() if host['status'] in states.PRESENT)
            if holders and (best is None or holders > best[0]):
                known = self.indexes.load(row['id'])
                if known is not None:
                    best = (holders, row['id']) + known
        return best[1:] if best else None

    def _publish(self, image, path, base_id, base_prefix, base_index):
        """Write the delta unless it is in place; return its sources."""
        name = '%s%s%s%s' % (chunk_indexes.hash_prefix(image), INFIX,
                             base_prefix, SUFFIX)
        final = self.server.extra_artifact_path(image, name)
        directory, _ = os.path.split(final)
        record_path = os.path.join(directory,
                                   '%s%s.json' % (RECORD_PREFIX, name))
        record = _load_record(record_path, final)
        if record is None:
            record = self._write(image, path, base_id, base_index, final)
            with fileutils.atomic_write(record_path) as out:
                out.write(json.dumps(record).encode())
        artifact = servers_base.ExtraArtifact(
            name=name, path=final, compression='zstd', size=record['size'],
            hash_algo=HASH_ALGO, hash_value=record['hash_value'])
        return delta_sources(self.server.serve_extra(image, artifact),
                             base_id, image.id,
                             record.get('average', base_index.average))

    def _write(self, image, path, base_id, base_index, final):
        started = time.monotonic()
        cctx = zstandard.ZstdCompressor(level=self.options.compression_level)
        with fileutils.atomic_write(final) as out:
            counted = _HashingWriter(out)
            with cctx.stream_writer(counted, closefd=False) as packed:
                with open(path, 'rb') as src:
                    writer = delta_format.write_delta(src, base_index,
                                                      packed)
        LOG.info('Delta of image %s against %s: %d bytes for %d (%d taken '
                 'from the base) in %.1f s', image.id, base_id,
                 counted.size, writer.size, writer.copied,
                 time.monotonic() - started)
        return {'size': counted.size, 'hash_algo': HASH_ALGO,
                'hash_value': counted.digest.hexdigest(), 'base': base_id,
                'average': base_index.average,
                'image_bytes': writer.size, 'copied_bytes': writer.copied}


def delta_sources(transports, base_id, image_id=None, average=None):
    """Turn the sources of a delta artifact into ``delta`` sources.

    Each keeps its transport's fields, names the transport in
    ``transport``, the base in ``base`` and, given ``average`` (the
    average chunk size the delta was cut with), its ``chunking``. A
    source without a ``url`` gets the first one another source has (the
    http web seed or fallback): agents of meta 1.3 know ``delta`` over
    HTTP only and need one. Without any URL there are no delta sources.

    :param transports: what :meth:`ImageServer.serve_extra` returned.
    :returns: the list of ``delta`` source dicts, in the same order.
    """
    url = next((s['url'] for s in transports if s.get('url')), None)
    if url is None:
        if transports:
            LOG.warning('No delta for image %s: the server gave no URL of '
                        'it, which agents of meta 1.3 need', image_id)
        return []
    sources = []
    for source in transports:
        made = dict(source, method=METHOD, transport=source['method'],
                    base={'id': base_id})
        if average is not None:
            made['chunking'] = {'average': average}
        made.setdefault('url', url)
        sources.append(made)
    return sources


class _HashingWriter(object):
    """Counts and hashes what passes to ``out``."""

    def __init__(self, out):
        self.out = out
        self.size = 0
        self.digest = hashlib.new(HASH_ALGO)

    def write(self, data):
        self.out.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self):
        self.out.flush()


def _load_record(record_path, artifact_path):
    try:
        with open(record_path) as f:
            record = json.load(f)
        size = os.stat(artifact_path).st_size
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get('size') != size:
        return None
    return record
