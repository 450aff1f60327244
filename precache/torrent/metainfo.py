"""Making and reading torrents, and the peer addresses put in ``meta``.

precache's torrents are v1 only (every libtorrent and most other clients
read them), describe one file, the compressed artifact, and carry its
HTTP URL as a web seed (BEP 19 ``url-list``) and optionally trackers.
"""

import base64
import binascii
import socket

import libtorrent as lt

from precache.common import exception

KiB = 1024
MiB = 1024 * KiB
#: The smallest piece BitTorrent allows: one block.
MIN_PIECE_SIZE = 16 * KiB
CREATOR = 'precache'


def make_torrent(path, piece_size, web_seeds=(), trackers=()):
    """Hash the file at ``path`` into a v1 torrent; return its bytes.

    :param path: the file to describe; the torrent's name is its base
        name, so a client saving into the file's directory finds it.
    :param piece_size: bytes per piece, a power of two of 16 KiB or more.
    :param web_seeds: URLs of the same file over HTTP (BEP 19).
    :param trackers: announce URLs, one tier each.
    :returns: the bencoded torrent.
    """
    files = lt.list_files(path)
    creator = lt.create_torrent(files, piece_size,
                                lt.create_torrent.v1_only)
    creator.set_creator(CREATOR)
    for url in web_seeds:
        creator.add_url_seed(url)
    for tier, url in enumerate(trackers):
        creator.add_tracker(url, tier)
    parent = path.rsplit('/', 1)[0] if '/' in path else '.'
    lt.set_piece_hashes(creator, parent)
    return lt.bencode(creator.generate())


def encode(torrent):
    """Return the bencoded ``torrent`` as base64 text for ``meta``."""
    return base64.b64encode(torrent).decode('ascii')


def load(encoded):
    """Read the base64 text of a torrent into ``add_torrent_params``.

    :returns: ``add_torrent_params`` with ``ti``, ``url_seeds`` and
        ``trackers`` filled from the torrent.
    :raises ValueError: not base64, or not a valid v1 torrent.
    """
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError('the torrent is not valid base64: %s' % exc)
    try:
        params = lt.load_torrent_buffer(data)
    except RuntimeError as exc:
        raise ValueError('the torrent cannot be read: %s' % exc)
    if params.ti is None or not params.ti.is_valid():
        raise ValueError('the torrent has no valid info dictionary')
    if params.ti.num_files() != 1:
        raise ValueError('the torrent describes %d files, expected one'
                         % params.ti.num_files())
    if not params.ti.info_hashes().has_v1():
        raise ValueError('the torrent is not a v1 torrent')
    return params


def format_peer(host, port):
    """Return ``host:port`` (``[host]:port`` for IPv6) for ``meta``."""
    if ':' in host:
        host = '[%s]' % host
    return '%s:%d' % (host, port)


def parse_peer(peer):
    """Return ``(host, port)`` of a ``host:port`` or ``[v6]:port`` string.

    :raises ValueError: malformed.
    """
    host, sep, port = peer.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('%r is not host:port' % peer)
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    return host, int(port)


def resolve_peer(peer):
    """Return the ``(ip, port)`` endpoints of a ``host:port`` string.

    :raises ValueError: malformed, or the name does not resolve.
    """
    host, port = parse_peer(peer)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError('peer %s does not resolve: %s' % (peer, exc))
    endpoints = []
    for _family, _type, _proto, _name, address in infos:
        endpoint = (address[0], address[1])
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    return endpoints


def check_piece_size(piece_size_kb):
    """Return the piece size in bytes, or raise ConfigurationError."""
    size = int(piece_size_kb * KiB)
    if size < MIN_PIECE_SIZE or size & (size - 1):
        raise exception.ConfigurationError(
            reason='piece_size_kb %s is not a power of two of 16 KiB or '
                   'more' % piece_size_kb)
    return size
