"""A small HTTP tracker for the torrents one service seeds.

Agents must find each other quickly: a swarm in which each agent only
knows the seed is no swarm, and peer exchange passes addresses on once a
minute at most. This tracker answers BitTorrent announces (BEP 3, compact
peer lists of BEP 23, ``peers6`` of BEP 7) for the info-hashes it was
told about, so an agent that joins gets, with its first announce, up to
``numwant`` agents already in the swarm and connects to them; those that
come later connect to it. A full mesh forms within seconds of the cast,
without DHT, a public tracker or any service besides precache.

It is deliberately small: the peers live in memory, keyed by info-hash
and by the address the announce came from with the port it announced
(the claimed peer id and the ``ip`` parameter are ignored: a client can
neither put someone else in the swarm nor take someone out with
``stopped``); peers that did not announce for three intervals are
forgotten, peers that announce ``stopped`` at once. One address has at
most ``peers_per_address`` peers in a swarm: a further one replaces the
one of that address heard from least recently, so a client flooding the
swarm with ports only churns its own entries. Announces for other
info-hashes get a failure reason. A peer that still lacks pieces is
listed before those that are complete, which keep seeding for a while
only.

Every torrent has a secret, its **passkey** (random, made with the
torrent; see :class:`precache.service.servers.seeding.Seeder`): it is
in the announce URL written into the torrent and in the first-copy URL,
both inside the ``bittorrent`` source of the meta the service signs.
Announces and first-copy requests without it get a failure reason, so
only hosts that received the meta take part.

It also hands out **first copies** (``GET /inject``): the origin's uplink
is the one link every byte must cross once, so each piece should cross it
once. An agent asks which piece to fetch from the origin; the tracker
answers each piece to one agent only (:class:`FirstCopies`), in order,
and hands a piece out again only if the agent that took it did not
confirm it within a lease. Only addresses with a peer in the swarm get
pieces, each at most ``leases_per_address`` unconfirmed at once, and only
the address that holds a piece can confirm it. The agent fetches the
piece's bytes from the origin's web server and adds them to its torrent,
from where the swarm spreads them. The seed itself does not announce
here, so agents that take part trade only with each other; it stays the
fallback for agents that do not.
"""

import ipaddress
import struct
import urllib.parse

import libtorrent as lt
from oslo_log import log as logging

from precache.common import webserver
from precache.torrent import registry

LOG = logging.getLogger(__name__)

#: The path agents announce to (libtorrent accepts trackers on loopback
#: addresses only with this path).
ANNOUNCE_PATH = '/announce'
#: Peers returned when an announce does not say how many it wants.
DEFAULT_NUMWANT = 50
#: The most peers returned by one announce.
MAX_NUMWANT = 200
#: The path agents ask for first copies on.
INJECT_PATH = '/inject'
#: Seconds a first-copy request waits for a stream to free up before the
#: tracker answers ``wait``.
INJECT_WAIT = 5.0
#: Seconds a socket operation of the tracker may wait once a request's
#: head is in (see :mod:`precache.common.webserver` for the head).
SOCKET_TIMEOUT = 30.0


def compact(peers):
    """Return ``(peers, peers6)``: the compact forms of BEP 23 and 7."""
    v4, v6 = [], []
    for peer in peers:
        address = ipaddress.ip_address(peer.address)
        if address.version == 4:
            v4.append(address.packed + struct.pack('!H', peer.port))
        else:
            v6.append(address.packed + struct.pack('!H', peer.port))
    return b''.join(v4), b''.join(v6)


def parse_announce(query):
    """Return the announce's fields from its query string.

    :returns: ``(info_hash, peer_id, port, left, event, numwant)``.
    :raises registry.AnnounceError: a field is missing or malformed.
    """
    # info_hash and peer_id are raw bytes, percent-encoded.
    fields = urllib.parse.parse_qs(query, encoding='latin-1')

    def one(name, default=None):
        values = fields.get(name)
        if not values:
            if default is None:
                raise registry.AnnounceError('missing %s' % name)
            return default
        return values[0]

    info_hash = one('info_hash').encode('latin-1')
    peer_id = one('peer_id').encode('latin-1')
    if len(info_hash) != 20 or len(peer_id) != 20:
        raise registry.AnnounceError('info_hash and peer_id must be 20 bytes')
    try:
        port = int(one('port'))
        left = int(one('left', '0'))
        numwant = int(one('numwant', str(DEFAULT_NUMWANT)))
    except ValueError as exc:
        raise registry.AnnounceError('malformed number: %s' % exc)
    if not 0 < port < 65536:
        raise registry.AnnounceError('bad port %d' % port)
    event = one('event', '')
    if event not in ('', 'started', 'completed', 'stopped', 'paused'):
        raise registry.AnnounceError('unknown event %r' % event)
    return (info_hash, peer_id, port, max(left, 0), event,
            min(max(numwant, 0), MAX_NUMWANT))


def parse_inject(query):
    """Return ``(info_hash, confirmed pieces, take)`` of a first-copy request.

    The query is ``info_hash=<40 hex digits>``, optionally ``done=<piece>``,
    repeated, and ``take=0`` for a request that only confirms (an agent
    whose download ended).

    :raises registry.AnnounceError: a field is missing or malformed.
    """
    fields = urllib.parse.parse_qs(query)
    try:
        info_hash = bytes.fromhex(fields['info_hash'][0])
        confirmed = [int(piece) for piece in fields.get('done', [])]
        take = fields.get('take', ['1'])[0] != '0'
    except (KeyError, ValueError) as exc:
        raise registry.AnnounceError('malformed first-copy request: %s' % exc)
    if len(info_hash) != 20:
        raise registry.AnnounceError('info_hash must be 20 bytes')
    return info_hash, confirmed, take


def parse_passkey(query):
    """Return the ``passkey`` of a request's query string, or ''."""
    values = urllib.parse.parse_qs(query).get('passkey')
    return values[0] if values else ''


def client_address(handler):
    """Return the address a request came from, IPv4-mapped ones as IPv4."""
    address = handler.client_address[0]
    if address.startswith('::ffff:'):
        address = address[7:]
    return address


class AnnounceHandler(webserver.RequestHandler):
    """Answers ``GET /announce?...`` and ``GET /inject?...``.

    Both answer a bencoded dictionary. ``/inject`` answers ``piece`` (the
    index to fetch), ``wait`` or ``done`` (see :class:`registry.FirstCopies`).
    Both require the torrent's passkey; refusals answer a ``failure
    reason``.
    """

    protocol_version = 'HTTP/1.1'
    timeout = SOCKET_TIMEOUT

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == INJECT_PATH:
            self._first_copy(url.query)
            return
        if url.path != ANNOUNCE_PATH:
            self.send_error(404)
            return
        swarms = self.server.swarms
        address = client_address(self)
        try:
            info_hash, peer_id, port, left, event, numwant = (
                parse_announce(url.query))
            swarms.authorize(info_hash, parse_passkey(url.query))
            try:
                peers, complete, total = swarms.announce(
                    info_hash, peer_id, address, port, left, event, numwant)
            except KeyError:
                raise registry.AnnounceError(
                    'torrent %s is not seeded here' % info_hash.hex())
        except registry.AnnounceError as exc:
            self._refuse('an announce', exc)
            return
        peers4, peers6 = compact(peers)
        body = {'interval': swarms.interval,
                'min interval': max(1, swarms.interval // 2),
                'complete': complete, 'incomplete': total - complete,
                'peers': peers4}
        if peers6:
            body['peers6'] = peers6
        self._send(body)

    def _first_copy(self, query):
        swarms = self.server.swarms
        address = client_address(self)
        try:
            info_hash, confirmed, take = parse_inject(query)
            swarms.authorize(info_hash, parse_passkey(query))
            try:
                if take:
                    answer = swarms.take_first_copy(
                        info_hash, confirmed, wait=INJECT_WAIT,
                        holder=address)
                else:
                    swarms.confirm_first_copies(info_hash, confirmed,
                                                holder=address)
                    answer = registry.FirstCopies.DONE
            except KeyError:
                raise registry.AnnounceError(
                    'torrent %s is not seeded here' % info_hash.hex())
        except registry.AnnounceError as exc:
            self._refuse('a first-copy request', exc)
            return
        if isinstance(answer, int):
            self._send({'piece': answer})
        else:
            self._send({answer: 1})

    def _refuse(self, what, reason):
        LOG.debug('Refused %s from %s: %s', what, self.client_address[0],
                  reason)
        self._send({'failure reason': str(reason).encode()})

    def _send(self, body):
        data = lt.bencode(body)
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def version_string(self):
        return 'precache-tracker'

    def log_message(self, format, *args):
        LOG.debug('tracker %s: ' + format, self.client_address[0], *args)


class Tracker(webserver.BackgroundHTTPServer):
    """The tracker's HTTP server.

    :param address: ``(host, port)`` to bind; port 0 picks a free port.
    :param interval: seconds between announces asked of the peers.
    :param first_copy_streams: first copies fetched at the same time.
    :param peers_per_address: peers one address may have in a swarm.
    :param leases_per_address: first copies one address may hold.
    :param head_timeout: seconds a client has for a request's head.
    :param max_per_address: connections one address may hold open.
    """

    request_queue_size = 1024

    def __init__(self, address, interval,
                 first_copy_streams=registry.FIRST_COPY_STREAMS,
                 peers_per_address=registry.PEERS_PER_ADDRESS,
                 leases_per_address=registry.LEASES_PER_ADDRESS,
                 head_timeout=webserver.HEAD_TIMEOUT,
                 max_per_address=webserver.MAX_CONNECTIONS_PER_ADDRESS):
        self.swarms = registry.Swarms(interval, first_copy_streams,
                                      peers_per_address=peers_per_address,
                                      leases_per_address=leases_per_address)
        super().__init__(address, AnnounceHandler, head_timeout,
                         max_per_address)

    def start(self, name='precache-tracker'):
        super().start(name)
        LOG.info('BitTorrent tracker listening on %s port %d',
                 self.server_address[0], self.port)
