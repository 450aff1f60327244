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
and peer id, with the address the announce came from (the ``ip``
parameter is ignored: an agent cannot put someone else in the swarm);
peers that did not announce for three intervals are forgotten, peers
that announce ``stopped`` at once. Announces for other info-hashes get a
failure reason. A peer that still lacks pieces is listed before those
that are complete, which keep seeding for a while only.

It also hands out **first copies** (``GET /inject``): the origin's uplink
is the one link every byte must cross once, so each piece should cross it
once. An agent asks which piece to fetch from the origin; the tracker
answers each piece to one agent only (:class:`FirstCopies`), in order,
and hands a piece out again only if the agent that took it did not
confirm it within a lease. The agent fetches the piece's bytes from the
origin's web server and adds them to its torrent, from where the swarm
spreads them. The seed itself does not announce here, so agents that
take part trade only with each other; it stays the fallback for agents
that do not.
"""

import http.server
import ipaddress
import random
import struct
import threading
import time
import urllib.parse

import libtorrent as lt
from oslo_log import log as logging

from precache.common import webserver

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
#: Seconds an agent has to confirm a first copy before another agent is
#: given the piece.
INJECT_LEASE = 30.0
#: First copies fetched from the origin at the same time, by default.
FIRST_COPY_STREAMS = 32
#: Seconds a first-copy request waits for a stream to free up before the
#: tracker answers ``wait``.
INJECT_WAIT = 5.0


class FirstCopies(object):
    """Which agent fetches each piece of one torrent from the origin.

    Pieces are handed out in order, each to one agent, at most
    ``streams`` at a time: at thousands of agents a fetch each would
    split the origin's uplink thousands of ways and hold as many
    connections. Too few streams leave the uplink idle, though: each
    fetch shares its agent's downlink with the swarm's connections
    (measured with 24 agents: 4 streams took 37.4 s, 32 took 23.5 s). An
    agent confirms a piece when it asks for the next one. Once every
    piece was handed out, pieces not confirmed within ``lease`` seconds
    are handed out again (their agent died or lost the piece); agents are
    told to wait while all streams are taken or others still hold
    unconfirmed pieces, and that all is done when every piece was
    confirmed.

    :param num_pieces: pieces in the torrent.
    :param streams: pieces handed out and not yet confirmed, at most.
    :param lease: seconds before an unconfirmed piece is handed out again;
        :data:`INJECT_LEASE` if None.
    :param clock: returns the current monotonic time (for tests).
    """

    #: Answers of :meth:`take` besides a piece index.
    WAIT, DONE = 'wait', 'done'

    def __init__(self, num_pieces, streams=FIRST_COPY_STREAMS, lease=None,
                 clock=time.monotonic):
        self.num_pieces = num_pieces
        self.streams = streams
        self.lease = INJECT_LEASE if lease is None else lease
        self._clock = clock
        self._next = 0
        #: piece -> when it was handed out, for pieces not confirmed.
        self._held = {}

    def confirm(self, pieces):
        """Record that ``pieces`` reached the swarm."""
        for piece in pieces:
            self._held.pop(piece, None)

    def take(self, confirmed=()):
        """Record ``confirmed`` pieces; return a piece, WAIT or DONE."""
        self.confirm(confirmed)
        now = self._clock()
        if self._held:
            piece, since = min(self._held.items(), key=lambda i: i[1])
            if now - since >= self.lease:
                self._held[piece] = now
                return piece
        if self._next >= self.num_pieces:
            return self.WAIT if self._held else self.DONE
        if len(self._held) >= self.streams:
            return self.WAIT
        piece = self._next
        self._next += 1
        self._held[piece] = now
        return piece


class Peer(object):
    """One agent (or seed) in a swarm, as its last announce described it."""

    __slots__ = ('address', 'port', 'left', 'seen')

    def __init__(self, address, port, left, seen):
        self.address = address
        self.port = port
        self.left = left
        self.seen = seen

    @property
    def complete(self):
        return self.left == 0


class Swarms(object):
    """The peers of each tracked info-hash.

    :param interval: seconds between announces asked of the peers.
    :param clock: returns the current monotonic time (for tests).
    """

    def __init__(self, interval, first_copy_streams=FIRST_COPY_STREAMS,
                 clock=time.monotonic):
        self.interval = interval
        self.first_copy_streams = first_copy_streams
        self._clock = clock
        self._lock = threading.Condition()
        #: info-hash (20 bytes) -> {peer id: Peer}
        self._swarms = {}
        #: info-hash (20 bytes) -> FirstCopies
        self._first_copies = {}

    def track(self, info_hash, num_pieces=0):
        """Answer announces for ``info_hash`` (hex) from now on.

        :param num_pieces: the torrent's pieces, handed out as first
            copies (:meth:`take_first_copy`); 0 hands out none.
        """
        key = bytes.fromhex(info_hash)
        with self._lock:
            self._swarms.setdefault(key, {})
            if key not in self._first_copies:
                self._first_copies[key] = FirstCopies(
                    num_pieces, self.first_copy_streams, clock=self._clock)

    def untrack(self, info_hash):
        """Stop answering for ``info_hash`` (hex) and forget its peers."""
        key = bytes.fromhex(info_hash)
        with self._lock:
            self._swarms.pop(key, None)
            self._first_copies.pop(key, None)

    def confirm_first_copies(self, info_hash, pieces):
        """Record that ``pieces`` of ``info_hash`` reached the swarm.

        :raises KeyError: the info-hash is not tracked.
        """
        with self._lock:
            self._first_copies[info_hash].confirm(pieces)
            self._lock.notify_all()

    def take_first_copy(self, info_hash, confirmed=(), wait=0):
        """Return the piece of ``info_hash`` (20 bytes) to fetch, or why not.

        See :meth:`FirstCopies.take`. While the answer would be ``wait``,
        waits up to ``wait`` seconds for a stream to free up (a long
        poll: the agent gets its piece as soon as there is one).

        :raises KeyError: the info-hash is not tracked.
        """
        deadline = time.monotonic() + wait
        with self._lock:
            if confirmed:
                self._lock.notify_all()
            while True:
                answer = self._first_copies[info_hash].take(confirmed)
                confirmed = ()
                left = deadline - time.monotonic()
                if answer != FirstCopies.WAIT or left <= 0:
                    return answer
                self._lock.wait(min(left, 1.0))

    def tracked(self):
        """Return the hex info-hashes tracked."""
        with self._lock:
            return sorted(key.hex() for key in self._swarms)

    def peers(self, info_hash):
        """Return ``{peer id: Peer}`` of ``info_hash`` (hex), live ones."""
        with self._lock:
            swarm = self._swarms.get(bytes.fromhex(info_hash), {})
            self._expire(swarm)
            return dict(swarm)

    def announce(self, info_hash, peer_id, address, port, left, event,
                 numwant):
        """Record an announce; return ``(peers for it, complete, total)``.

        :param info_hash: the torrent's 20-byte info-hash.
        :param peer_id: the announcing peer's 20-byte id.
        :param address: the address the announce came from.
        :param event: ``started``, ``completed``, ``stopped`` or ''.
        :raises KeyError: the info-hash is not tracked.
        """
        now = self._clock()
        with self._lock:
            swarm = self._swarms[info_hash]
            self._expire(swarm)
            if event == 'stopped':
                swarm.pop(peer_id, None)
                others = []
            else:
                swarm[peer_id] = Peer(address, port, left, now)
                others = [p for key, p in swarm.items() if key != peer_id]
            complete = sum(1 for p in swarm.values() if p.complete)
            total = len(swarm)
        random.shuffle(others)
        # Those still downloading first: they will be there to trade.
        others.sort(key=lambda p: p.complete)
        return others[:numwant], complete, total

    def _expire(self, swarm):
        oldest = self._clock() - 3 * self.interval
        for key in [k for k, p in swarm.items() if p.seen < oldest]:
            del swarm[key]


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


class AnnounceError(Exception):
    """An announce the tracker refuses; the message is sent back."""


def parse_announce(query):
    """Return the announce's fields from its query string.

    :returns: ``(info_hash, peer_id, port, left, event, numwant)``.
    :raises AnnounceError: a field is missing or malformed.
    """
    # info_hash and peer_id are raw bytes, percent-encoded.
    fields = urllib.parse.parse_qs(query, encoding='latin-1')

    def one(name, default=None):
        values = fields.get(name)
        if not values:
            if default is None:
                raise AnnounceError('missing %s' % name)
            return default
        return values[0]

    info_hash = one('info_hash').encode('latin-1')
    peer_id = one('peer_id').encode('latin-1')
    if len(info_hash) != 20 or len(peer_id) != 20:
        raise AnnounceError('info_hash and peer_id must be 20 bytes')
    try:
        port = int(one('port'))
        left = int(one('left', '0'))
        numwant = int(one('numwant', str(DEFAULT_NUMWANT)))
    except ValueError as exc:
        raise AnnounceError('malformed number: %s' % exc)
    if not 0 < port < 65536:
        raise AnnounceError('bad port %d' % port)
    event = one('event', '')
    if event not in ('', 'started', 'completed', 'stopped', 'paused'):
        raise AnnounceError('unknown event %r' % event)
    return (info_hash, peer_id, port, max(left, 0), event,
            min(max(numwant, 0), MAX_NUMWANT))


def parse_inject(query):
    """Return ``(info_hash, confirmed pieces, take)`` of a first-copy request.

    The query is ``info_hash=<40 hex digits>``, optionally ``done=<piece>``,
    repeated, and ``take=0`` for a request that only confirms (an agent
    whose download ended).

    :raises AnnounceError: a field is missing or malformed.
    """
    fields = urllib.parse.parse_qs(query)
    try:
        info_hash = bytes.fromhex(fields['info_hash'][0])
        confirmed = [int(piece) for piece in fields.get('done', [])]
        take = fields.get('take', ['1'])[0] != '0'
    except (KeyError, ValueError) as exc:
        raise AnnounceError('malformed first-copy request: %s' % exc)
    if len(info_hash) != 20:
        raise AnnounceError('info_hash must be 20 bytes')
    return info_hash, confirmed, take


class AnnounceHandler(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /announce?...`` and ``GET /inject?...``.

    Both answer a bencoded dictionary. ``/inject`` answers ``piece`` (the
    index to fetch), ``wait`` or ``done`` (see :class:`FirstCopies`).
    """

    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == INJECT_PATH:
            self._first_copy(url.query)
            return
        if url.path != ANNOUNCE_PATH:
            self.send_error(404)
            return
        swarms = self.server.swarms
        try:
            info_hash, peer_id, port, left, event, numwant = (
                parse_announce(url.query))
            address = self.client_address[0]
            if address.startswith('::ffff:'):
                address = address[7:]
            try:
                peers, complete, total = swarms.announce(
                    info_hash, peer_id, address, port, left, event, numwant)
            except KeyError:
                raise AnnounceError('torrent %s is not seeded here'
                                    % info_hash.hex())
        except AnnounceError as exc:
            LOG.debug('Refused an announce from %s: %s',
                      self.client_address[0], exc)
            self._send({'failure reason': str(exc).encode()})
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
        try:
            info_hash, confirmed, take = parse_inject(query)
            try:
                if take:
                    answer = self.server.swarms.take_first_copy(
                        info_hash, confirmed, wait=INJECT_WAIT)
                else:
                    self.server.swarms.confirm_first_copies(info_hash,
                                                            confirmed)
                    answer = FirstCopies.DONE
            except KeyError:
                raise AnnounceError('torrent %s is not seeded here'
                                    % info_hash.hex())
        except AnnounceError as exc:
            self._send({'failure reason': str(exc).encode()})
            return
        if isinstance(answer, int):
            self._send({'piece': answer})
        else:
            self._send({answer: 1})

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
    """

    request_queue_size = 1024

    def __init__(self, address, interval,
                 first_copy_streams=FIRST_COPY_STREAMS):
        self.swarms = Swarms(interval, first_copy_streams)
        super().__init__(address, AnnounceHandler)

    def start(self, name='precache-tracker'):
        super().start(name)
        LOG.info('BitTorrent tracker listening on %s port %d',
                 self.server_address[0], self.port)
