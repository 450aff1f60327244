"""``meta``: the wire contract of ``cache(image_id, meta)``.

``meta`` is a JSON-serialisable dict, built by the service and validated by
:func:`validate` on both ends. Its ``version`` is ``MAJOR.MINOR``: an agent
accepts any minor version of the major versions it knows, ignoring keys it
does not know, and refuses other major versions.

Example::

    {"version": "1.2",
     "epoch": "9b2c6f0e4d1a4f7e8c3b5a6d7e8f9012",
     "generation": 1795046400123,
     "image": {"id": "...", "name": "...", "disk_format": "qcow2",
               "size": 123, "os_hash_algo": "sha512",
               "os_hash_value": "...", "checksum": "..."},
     "sources": [{"method": "http", "url": "http://origin/x.zst",
                  "compression": "zstd", "size": 45,
                  "hash_algo": "sha256", "hash_value": "..."},
                 {"method": "bittorrent", "torrent": "<base64>",
                  "info_hash": "<40 hex digits>",
                  "peers": ["seed.example.org:6881"],
                  "inject_url":
                      "http://seed.example.org:6969/inject?passkey=...",
                  "compression": "zstd", "size": 45,
                  "hash_algo": "sha256", "hash_value": "..."},
                 {"method": "glance"}],
     "targets": {"hosts": ["cmp-*"], "labels": ["az1"]},
     "pin_until": null,
     "signature": {"key_id": "3f2a...", "algorithm": "ed25519",
                   "value": "<base64>"}}

``image.os_hash_value`` (or the md5 ``checksum`` when there is no multihash)
is the hash of the image's bytes as Glance stores them, after the source's
compression is undone: the agent verifies that before anything lands.

Version history:

* 1.0 - first version.
* 1.1 - ``bittorrent`` sources: ``torrent`` (base64 of a bencoded v1
  torrent of the artifact), ``info_hash`` (its hex v1 info-hash) and
  ``peers`` (``host:port`` of peers to connect to, e.g. the seed) and
  optionally ``inject_url`` (the service tracker's first-copy URL, see
  :mod:`precache.torrent.injector`). The built-in tracker's URLs (in the
  torrent and ``inject_url``) carry the torrent's ``passkey`` in their
  query string, protected by the signature like the rest.
* 1.2 - ``epoch`` (required): the service database's epoch (32 hex
  digits, fixed when the database is created); a decision is ordered by
  ``(epoch, generation)``, see :func:`is_stale`. ``signature``: the
  Ed25519 signature of everything else (see
  :mod:`precache.objects.signing`). ``image.id`` is 1 to 255 printable
  ASCII characters without ``/`` or ``\\``.
* 1.3 - ``delta`` sources: like ``http`` (``url``, ``compression``,
  ``size``, ``hash_algo``, ``hash_value`` of the delta artifact) plus
  ``base`` (``{"id": ..., "os_hash_value": ...}``: the image whose local
  copy the delta is made against, see :mod:`precache.objects.delta`). An
  agent without a ``delta`` source plugin skips the source and takes the
  next one, the full artifact.
* 1.4 - ``delta`` sources name their ``transport``: the method of the
  source that carries the delta artifact (``http`` when absent, as in
  1.3; ``bittorrent``, ``swift``), whose fields they carry as well (a
  ``bittorrent`` one its ``torrent``, ``info_hash``, ``peers``,
  ``inject_url``). Every ``delta`` source keeps a ``url`` (for
  ``bittorrent``, the web seed's), so agents of 1.3 fetch it over HTTP.
* 1.5 - ``delta`` sources name the ``chunking`` their delta was made
  with: ``{"average": 16384}``, the average chunk size (bytes) the base
  was cut with (see :mod:`precache.objects.chunks`). The agent's chunk
  index cuts the store the same way (see
  :mod:`precache.agent.chunk_index`); an agent of 1.4 or older ignores
  the field, and a ``delta`` source without it is valid (a service of
  1.4).
"""

import time
import uuid

import jsonschema

from precache.common import exception
from precache.objects import chunks
from precache.objects import image as image_mod

VERSION = '1.5'
MAJOR_VERSION = 1

METHODS = ('delta', 'http', 'glance', 'swift', 'bittorrent')
COMPRESSIONS = ('none', 'gzip', 'zstd')

_HEX = {'type': 'string', 'pattern': '^[0-9a-fA-F]+$'}
_NULLABLE_STR = {'type': ['string', 'null']}
_NULLABLE_INT = {'type': ['integer', 'null'], 'minimum': 0}
_BASE64 = {'type': 'string', 'minLength': 4,
           'pattern': '^[A-Za-z0-9+/]+={0,2}$'}
# host:port, [IPv6]:port
_PEER = {'type': 'string',
         'pattern': r'^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]/]+):[0-9]{1,5}$'}

IMAGE_SCHEMA = {
    'type': 'object',
    'required': ['id', 'disk_format', 'size'],
    'properties': {
        'id': {'type': 'string', 'minLength': 1,
               'maxLength': image_mod.MAX_ID_LENGTH,
               'pattern': image_mod.ID_PATTERN},
        'name': _NULLABLE_STR,
        'disk_format': {'type': 'string', 'minLength': 1},
        'container_format': _NULLABLE_STR,
        'size': {'type': 'integer', 'minimum': 0},
        'virtual_size': _NULLABLE_INT,
        'os_hash_algo': _NULLABLE_STR,
        'os_hash_value': {'anyOf': [_HEX, {'type': 'null'}]},
        'checksum': {'anyOf': [_HEX, {'type': 'null'}]},
        'updated_at': _NULLABLE_STR,
    },
    'anyOf': [
        {'required': ['os_hash_algo', 'os_hash_value'],
         'properties': {'os_hash_algo': {'type': 'string'},
                        'os_hash_value': _HEX}},
        {'required': ['checksum'], 'properties': {'checksum': _HEX}},
    ],
}

SOURCE_SCHEMA = {
    'type': 'object',
    'required': ['method'],
    'properties': {
        'method': {'type': 'string', 'minLength': 1},
        'url': {'type': 'string', 'pattern': '^https?://'},
        'compression': {'enum': list(COMPRESSIONS)},
        'size': _NULLABLE_INT,
        'hash_algo': _NULLABLE_STR,
        'hash_value': {'anyOf': [_HEX, {'type': 'null'}]},
        'torrent': _BASE64,
        'info_hash': {'type': 'string', 'pattern': '^[0-9a-fA-F]{40}$'},
        'peers': {'type': 'array', 'items': _PEER},
        'inject_url': {'type': 'string', 'pattern': '^https?://'},
        'transport': {'type': 'string', 'minLength': 1,
                      'not': {'const': 'delta'}},
        'base': {
            'type': 'object',
            'required': ['id'],
            'properties': {
                'id': {'type': 'string', 'minLength': 1,
                       'maxLength': image_mod.MAX_ID_LENGTH,
                       'pattern': image_mod.ID_PATTERN},
                'os_hash_value': {'anyOf': [_HEX, {'type': 'null'}]},
            },
        },
        'chunking': {
            'type': 'object',
            'required': ['average'],
            'properties': {
                'average': {'type': 'integer',
                            'minimum': chunks.MIN_AVERAGE,
                            'maximum': chunks.MAX_AVERAGE},
            },
        },
    },
    'allOf': [
        {'if': {'properties': {'method': {'enum': ['http', 'swift']}}},
         'then': {'required': ['url', 'compression']}},
        {'if': {'properties': {'method': {'const': 'delta'}}},
         'then': {'required': ['url', 'compression', 'base']}},
        {'if': {'properties': {'method': {'const': 'bittorrent'}}},
         'then': {'required': ['torrent', 'info_hash', 'compression']}},
        {'if': {'required': ['transport'],
                'properties': {'method': {'const': 'delta'},
                               'transport': {'const': 'bittorrent'}}},
         'then': {'required': ['torrent', 'info_hash']}},
    ],
}

EPOCH_SCHEMA = {'type': 'string', 'pattern': r'^[0-9a-f]{32}\Z'}

SIGNATURE_SCHEMA = {
    'type': 'object',
    'required': ['key_id', 'algorithm', 'value'],
    'properties': {
        'key_id': {'type': 'string', 'pattern': r'^[0-9a-f]{16}\Z'},
        'algorithm': {'const': 'ed25519'},
        'value': dict(_BASE64, maxLength=128),
    },
}

META_SCHEMA = {
    'type': 'object',
    'required': ['version', 'epoch', 'generation', 'image', 'sources'],
    'properties': {
        'version': {'type': 'string', 'pattern': r'^\d+\.\d+\Z'},
        'epoch': EPOCH_SCHEMA,
        'generation': {'type': 'integer', 'minimum': 0},
        'image': IMAGE_SCHEMA,
        'sources': {'type': 'array', 'minItems': 1, 'items': SOURCE_SCHEMA},
        'targets': {
            'type': ['object', 'null'],
            'properties': {
                'hosts': {'type': 'array', 'items': {'type': 'string'}},
                'labels': {'type': 'array', 'items': {'type': 'string'}},
            },
        },
        'pin_until': {'type': ['number', 'null']},
        'signature': SIGNATURE_SCHEMA,
    },
}

_VALIDATOR = jsonschema.Draft7Validator(META_SCHEMA)


def new_epoch():
    """Return a new epoch: 32 random hex digits."""
    return uuid.uuid4().hex


def new_generation(previous=None):
    """Return a generation counter larger than ``previous``.

    The counter is the time in microseconds, so that it still grows
    after the database is restored from a backup (same epoch, older
    counters), and at least ``previous + 1`` when a clock is behind.
    """
    now = time.time_ns() // 1000
    return now if previous is None else max(now, previous + 1)


def is_stale(meta, known_epoch, known_generation):
    """Whether ``meta`` is older than the decision ``(epoch, generation)``.

    Within one epoch a lower generation is stale. A meta of another epoch
    is never stale: it comes from a service database created since (or
    restored), which is authoritative.
    """
    return (meta['epoch'] == known_epoch and
            meta['generation'] < known_generation)


def build(image, sources, targets=None, pin_until=None, generation=None,
          *, epoch):
    """Build and validate a meta dict.

    :param image: the :class:`precache.objects.image.ImageRecord` being
        distributed.
    :param sources: list of source dicts, most preferred first.
    :param targets: optional ``{'hosts': [...], 'labels': [...]}``; hosts
        may be shell-style globs. ``None`` means every host.
    :param pin_until: optional UNIX time until which agents keep the image.
    :param generation: decision counter; a fresh one by default.
    :param epoch: the epoch of the service's database.
    :returns: the meta dict.
    :raises InvalidMeta: the result does not follow the schema.
    """
    record = image.to_dict()
    meta = {
        'version': VERSION,
        'epoch': epoch,
        'generation': new_generation() if generation is None else generation,
        'image': {k: record[k] for k in IMAGE_SCHEMA['properties']},
        'sources': list(sources),
        'targets': targets,
        'pin_until': pin_until,
    }
    return validate(meta)


def delta_average(sources):
    """The average chunk size the first ``delta`` source names, or None.

    None too for a meta older than 1.5 and for one without deltas: an
    agent then keeps cutting its store as it did.
    """
    for source in sources:
        if source.get('method') == 'delta':
            return (source.get('chunking') or {}).get('average')
    return None


def validate(meta):
    """Check ``meta`` against the schema and its version.

    :returns: ``meta`` itself.
    :raises InvalidMeta: with every problem found, so a sender can be fixed
        from one log line.
    """
    if not isinstance(meta, dict):
        raise exception.InvalidMeta(
            reason='expected an object, got %s' % type(meta).__name__)
    errors = sorted(_VALIDATOR.iter_errors(meta), key=lambda e: e.path)
    if errors:
        raise exception.InvalidMeta(reason='; '.join(
            '%s: %s' % ('/'.join(str(p) for p in e.absolute_path) or '.',
                        e.message) for e in errors))
    major = int(meta['version'].split('.')[0])
    if major != MAJOR_VERSION:
        raise exception.InvalidMeta(
            reason='version %s is not supported (this agent speaks %d.x)'
            % (meta['version'], MAJOR_VERSION))
    return meta
