"""What the built-in tracker knows: its swarms, their peers and the
first-copy leases.

In memory, keyed by info-hash. A peer is the address an announce came
from with the port it announced, never a claimed peer id; one address has
at most ``peers_per_address`` peers in a swarm and ``leases_per_address``
unconfirmed first copies. :mod:`precache.torrent.tracker` speaks the
protocol (announces, ``/inject``) on top of it.
"""

import hmac
import random
import threading
import time

#: Seconds an agent has to confirm a first copy before another agent is
#: given the piece.
INJECT_LEASE = 30.0
#: First copies fetched from the origin at the same time, by default.
FIRST_COPY_STREAMS = 32
#: Peers one address may have in a swarm, by default.
PEERS_PER_ADDRESS = 4
#: First copies one address may hold unconfirmed at once, by default.
LEASES_PER_ADDRESS = 4


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
