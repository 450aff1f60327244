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
torrent; see :class:`precache.service.servers.bittorrent.Seeder`): it is
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

import hmac
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
#: Peers one address may have in a swarm, by default.
PEERS_PER_ADDRESS = 4
#: First copies one address may hold unconfirmed at once, by default.
LEASES_PER_ADDRESS = 4
#: Seconds a socket operation of the tracker may wait once a request's
#: head is in (see :mod:`precache.common.webserver` for the head).
SOCKET_TIMEOUT = 30.0


class AnnounceError(Exception):
    """An announce the tracker refuses; the message is sent back."""


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

    def confirm(self, pieces, holder=None):
        """Record that ``pieces`` reached the swarm.

        :param holder: who confirms: only pieces it holds are confirmed.
            None confirms any piece (the service itself).
        """
        for piece in pieces:
            held = self._held.get(piece)
            if held is not None and holder in (None, held[1]):
                del self._held[piece]

    def held_by(self, holder):
        """Return how many pieces ``holder`` holds unconfirmed."""
        return sum(1 for _since, who in self._held.values() if who == holder)

    @property
    def done(self):
        """Whether every piece was handed out and confirmed."""
        return self._next >= self.num_pieces and not self._held

    def take(self, confirmed=(), holder=None, cap=None):
        """Record ``confirmed`` pieces; return a piece, WAIT or DONE.

        :param holder: who takes the piece (an address), or None.
        :param cap: pieces ``holder`` may hold unconfirmed at once; WAIT
            beyond it. None for no cap.
        """
        self.confirm(confirmed, holder)
        if self.done:
            return self.DONE
        if cap is not None and self.held_by(holder) >= cap:
            return self.WAIT
        now = self._clock()
        if self._held:
            piece, (since, _who) = min(self._held.items(),
                                       key=lambda i: i[1][0])
            if now - since >= self.lease:
                self._held[piece] = (now, holder)
                return piece
        if self._next >= self.num_pieces or len(self._held) >= self.streams:
            return self.WAIT
        piece = self._next
        self._next += 1
        self._held[piece] = (now, holder)
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
    :param first_copy_streams: first copies handed out at once.
    :param peers_per_address: peers one address may have in a swarm.
    :param leases_per_address: first copies one address may hold
        unconfirmed at once.
    :param clock: returns the current monotonic time (for tests).
    """

    def __init__(self, interval, first_copy_streams=FIRST_COPY_STREAMS,
                 clock=time.monotonic, peers_per_address=PEERS_PER_ADDRESS,
                 leases_per_address=LEASES_PER_ADDRESS):
        self.interval = interval
        self.first_copy_streams = first_copy_streams
        self.peers_per_address = peers_per_address
        self.leases_per_address = leases_per_address
        self._clock = clock
        self._lock = threading.Condition()
        #: info-hash (20 bytes) -> {(address, port): Peer}
        self._swarms = {}
        #: info-hash (20 bytes) -> FirstCopies
        self._first_copies = {}
        #: info-hash (20 bytes) -> passkey (str)
        self._passkeys = {}

    def track(self, info_hash, num_pieces=0, passkey=None):
        """Answer announces for ``info_hash`` (hex) from now on.

        :param num_pieces: the torrent's pieces, handed out as first
            copies (:meth:`take_first_copy`); 0 hands out none.
        :param passkey: the torrent's secret, required of every announce
            and first-copy request; None requires none (tests only).
        """
        key = bytes.fromhex(info_hash)
        with self._lock:
            self._swarms.setdefault(key, {})
            self._passkeys[key] = passkey
            if key not in self._first_copies:
                self._first_copies[key] = FirstCopies(
                    num_pieces, self.first_copy_streams, clock=self._clock)

    def untrack(self, info_hash):
        """Stop answering for ``info_hash`` (hex) and forget its peers."""
        key = bytes.fromhex(info_hash)
        with self._lock:
            self._swarms.pop(key, None)
            self._first_copies.pop(key, None)
            self._passkeys.pop(key, None)

    def authorize(self, info_hash, passkey):
        """Check a request's passkey for ``info_hash`` (20 bytes).

        :raises AnnounceError: the torrent is not tracked, or the passkey
            is missing or wrong.
        """
        with self._lock:
            if info_hash not in self._swarms:
                raise AnnounceError('torrent %s is not seeded here'
                                    % info_hash.hex())
            expected = self._passkeys.get(info_hash)
        if expected is None:
            return
        if not passkey:
            raise AnnounceError(
                'missing passkey: use the announce URL of the torrent in '
                'the signed meta')
        if not hmac.compare_digest(passkey.encode(), expected.encode()):
            raise AnnounceError('wrong passkey for torrent %s'
                                % info_hash.hex())

    def confirm_first_copies(self, info_hash, pieces, holder=None):
        """Record that ``pieces`` of ``info_hash`` reached the swarm.

        :param holder: the confirming address: only pieces it holds are
            confirmed. None confirms any (the service itself).
        :raises KeyError: the info-hash is not tracked.
        """
        with self._lock:
            self._first_copies[info_hash].confirm(pieces, holder)
            self._lock.notify_all()

    def first_copies_done(self, info_hash):
        """Whether every first copy of ``info_hash`` (20 bytes) is in.

        :raises KeyError: the info-hash is not tracked.
        """
        with self._lock:
            return self._first_copies[info_hash].done

    def take_first_copy(self, info_hash, confirmed=(), wait=0, holder=None):
        """Return the piece of ``info_hash`` (20 bytes) to fetch, or why not.

        See :meth:`FirstCopies.take`. While the answer would be ``wait``,
        waits up to ``wait`` seconds for a stream to free up (a long
        poll: the agent gets its piece as soon as there is one).

        :param holder: the asking address. It must have a live peer in
            the swarm and holds at most ``leases_per_address`` pieces.
            None (the service itself) is not checked.
        :raises KeyError: the info-hash is not tracked.
        :raises AnnounceError: ``holder`` did not announce.
        """
        deadline = time.monotonic() + wait
        cap = None if holder is None else self.leases_per_address
        with self._lock:
            if holder is not None:
                swarm = self._swarms[info_hash]
                self._expire(swarm)
                if not any(address == holder for address, _ in swarm):
                    raise AnnounceError(
                        'first copies go to peers of the swarm only: '
                        'announce torrent %s first' % info_hash.hex())
            if confirmed:
                self._lock.notify_all()
            while True:
                answer = self._first_copies[info_hash].take(
                    confirmed, holder, cap)
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
        """Return the live peers of ``info_hash`` (hex).

        :returns: ``{(address, port): Peer}``.
        """
        with self._lock:
            swarm = self._swarms.get(bytes.fromhex(info_hash), {})
            self._expire(swarm)
            return dict(swarm)

    def announce(self, info_hash, peer_id, address, port, left, event,
                 numwant):
        """Record an announce; return ``(peers for it, complete, total)``.

        The peer is ``(address, port)``: the address the announce came
        from and the port it announced, never the peer id it claims.

        :param info_hash: the torrent's 20-byte info-hash.
        :param peer_id: the announcing peer's 20-byte id (not trusted,
            not used).
        :param address: the address the announce came from.
        :param event: ``started``, ``completed``, ``stopped`` or ''.
        :raises KeyError: the info-hash is not tracked.
        """
        now = self._clock()
        me = (address, port)
        with self._lock:
            swarm = self._swarms[info_hash]
            self._expire(swarm)
            if event == 'stopped':
                swarm.pop(me, None)
                others = []
            else:
                if me not in swarm:
                    self._make_room(swarm, address)
                swarm[me] = Peer(address, port, left, now)
                others = [p for key, p in swarm.items() if key != me]
            complete = sum(1 for p in swarm.values() if p.complete)
            total = len(swarm)
        random.shuffle(others)
        # Those still downloading first: they will be there to trade.
        others.sort(key=lambda p: p.complete)
        return others[:numwant], complete, total

    def _make_room(self, swarm, address):
        """Forget ``address``'s least recent peers beyond its cap.

        Leaves room for the peer about to be added.
        """
        mine = sorted((p.seen, key) for key, p in swarm.items()
                      if key[0] == address)
        for _seen, key in mine[:max(0, len(mine) -
                                    self.peers_per_address + 1)]:
            del swarm[key]

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
    index to fetch), ``wait`` or ``done`` (see :class:`FirstCopies`).
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
                raise AnnounceError('torrent %s is not seeded here'
                                    % info_hash.hex())
        except AnnounceError as exc:
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
                    answer = FirstCopies.DONE
            except KeyError:
                raise AnnounceError('torrent %s is not seeded here'
                                    % info_hash.hex())
        except AnnounceError as exc:
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
                 first_copy_streams=FIRST_COPY_STREAMS,
                 peers_per_address=PEERS_PER_ADDRESS,
                 leases_per_address=LEASES_PER_ADDRESS,
                 head_timeout=webserver.HEAD_TIMEOUT,
                 max_per_address=webserver.MAX_CONNECTIONS_PER_ADDRESS):
        self.swarms = Swarms(interval, first_copy_streams,
                             peers_per_address=peers_per_address,
                             leases_per_address=leases_per_address)
        super().__init__(address, AnnounceHandler, head_timeout,
                         max_per_address)

    def start(self, name='precache-tracker'):
        super().start(name)
        LOG.info('BitTorrent tracker listening on %s port %d',
                 self.server_address[0], self.port)
