"""BitTorrent with first copies, simulated piece by piece.

The swarm as precache runs it (``precache/torrent/``,
``precache/agent/sources/bittorrent.py``), at the level of pieces:

* **first copies**: ``min(N, first_copy_streams)`` agents (32 by default,
  :data:`precache.torrent.registry.FIRST_COPY_STREAMS`) fetch pieces from
  the origin, in order, one at a time each; an agent's next request
  follows its confirmation of the last (``FirstCopies.take`` confirms and
  hands out in one call, so the same agents keep fetching). The seed is
  not in the swarm.
* **the swarm**: every agent is connected to ``min(N - 1, connections)``
  others (the tracker lists up to 200 peers, libtorrent keeps at most 200
  connections; beyond that a random graph) and uploads to every one that
  asks (``unchoke_slots_limit = -1``). A connection carries one piece at
  a time (libtorrent requests whole pieces of a peer that sends one
  within 20 s) and requests are pipelined, so a busy connection never
  idles between pieces; a piece is passed on only once complete.
* **queues**: other agents learn of a completed piece (the ``have``
  message, then their request) after the queue of its holder's uplink;
  an agent's next first copy starts (its request, the origin's answer)
  after the queues of its own uplink and of the origin's. A link's queue
  holds ``queue_frames`` full frames per flow crossing it (TCP keeps a
  few segments per flow in a drop-tail queue), so it grows with the
  connections sharing a link and drains at the link's rate; it is the
  model's one parameter fitted to the testbed (``piece_simulation.py``).
* **piece choice**: libtorrent's picker, ``(availability + 1) x
  (8 - priority)`` smallest first, with the priorities of the agent's
  four bands (:func:`precache.torrent.pieces.home_priorities`, a home
  drawn at random per agent); availability is counted over the whole
  swarm (the same as over an agent's peers in a full mesh).
* **links**: every host has an uplink and a downlink, the origin an
  uplink; optionally hosts sit in racks of ``rack_hosts`` whose uplink
  and downlink (``rack_bps``) every transfer between racks crosses
  (first copies cross the downlink of their agent's rack). The flows
  crossing the links share them max-min fairly (progressive filling),
  each link carrying ``goodput`` of its rate as payload (TCP/IP and
  Ethernet headers).

How it runs: a time-stepped simulation (``dt``, by default half a
piece's time at a host's full rate), vectorised with numpy over every
connection and link: each step fills idle connections whose peer has a
wanted piece (sets of pieces as bit arrays, checked only for connections
that went idle or whose peer announced a piece), shares the links,
advances every flow and records the pieces completed (at the exact
moment inside the step). 10,000 hosts with 200 connections each are two
million connections.

Not modelled: libtorrent's end game (duplicate requests for the last
pieces), TCP's ramp-up, CPU and disks, and that availability is counted
over an agent's peers only when the swarm is larger than its
connections.
"""

import heapq

import numpy as np

from precache.torrent import registry

#: Priorities of an agent's four bands, its own first (precache.torrent.
#: swarm.BAND_PRIORITIES; not imported: that module needs libtorrent).
BAND_PRIORITIES = (6, 5, 4, 3)
#: libtorrent's piece priority levels (its picker sorts by
#: (availability + 1) * (levels - priority)).
PRIORITY_LEVELS = 8
#: libtorrent's default connections_limit; the tracker's MAX_NUMWANT.
CONNECTIONS = 200
#: Payload per byte on the wire: 1448 bytes of TCP payload (with
#: timestamps) in a 1514-byte Ethernet frame.
GOODPUT = 1448.0 / 1514.0
#: Bytes of one full-size frame, for queueing delays.
FRAME_BYTES = 1514
#: Rounds of progressive filling per step.
FILL_ROUNDS = 3
#: A step is at most this fraction of the median time left of the
#: transfers under way (and at least half a piece at full rate).
STEP_DIVISOR = 10
#: Connections checked for a wanted piece at once (bounds memory).
CHUNK = 16384


class Swarm(object):
    """One image distributed by BitTorrent with first copies.

    :param hosts: N agents.
    :param host_bps: each host's link rate (bits/s), both directions
        unless ``host_down_bps`` is given.
    :param origin_bps: the origin's uplink.
    :param artifact_bytes: S_c, the torrent's size.
    :param piece_bytes: the torrent's piece size.
    :param streams: first copies fetched at once.
    :param connections: peers each agent is connected to, at most.
    :param queue_frames: full frames queued per flow on each link.
    :param latency: seconds added to every hop and first-copy request
        (a base round trip).
    :param goodput: payload share of each link's rate.
    :param rack_hosts: hosts per rack (0: no racks).
    :param rack_bps: each rack's uplink (and downlink) rate.
    """

    def __init__(self, hosts, host_bps, origin_bps, artifact_bytes,
                 piece_bytes, host_down_bps=None,
                 streams=registry.FIRST_COPY_STREAMS,
                 connections=CONNECTIONS, queue_frames=0.0, latency=0.0,
                 goodput=GOODPUT, rack_hosts=0, rack_bps=None):
        if hosts < 1 or artifact_bytes <= 0 or piece_bytes <= 0:
            raise ValueError('hosts, artifact and piece sizes must be '
                             'positive')
        if rack_hosts and not rack_bps:
            raise ValueError('racks need their uplink rate (rack_bps)')
        self.hosts = hosts
        self.host_bps = float(host_bps)
        self.host_down_bps = float(host_down_bps or host_bps)
        self.origin_bps = float(origin_bps)
        self.artifact_bytes = artifact_bytes
        self.piece_bytes = piece_bytes
        self.pieces = -(-int(artifact_bytes) // int(piece_bytes))
        self.streams = streams
        self.connections = connections
        self.queue_frames = queue_frames
        self.latency = latency
        self.goodput = goodput
        self.rack_hosts = rack_hosts
        self.rack_bps = rack_bps

    @property
    def bound(self):
        """S_c / B_h: no host can be done sooner."""
        return self.artifact_bytes * 8.0 / min(self.host_bps,
                                               self.host_down_bps)

    def piece_bits(self):
        bits = np.full(self.pieces, self.piece_bytes * 8.0)
        bits[-1] = (self.artifact_bytes - (self.pieces - 1) *
                    self.piece_bytes) * 8.0
        return bits


class Result(object):
    """What :func:`simulate` found.

    :ivar done: each host's completion time (seconds), sorted.
    :ivar origin_copies: bytes the origin sent over S_c.
    :ivar steps: time steps simulated.
    """

    def __init__(self, done, origin_copies, steps):
        self.done = np.sort(done)
        self.origin_copies = origin_copies
        self.steps = steps

    @property
    def last(self):
        return float(self.done[-1])

    @property
    def median(self):
        return float(np.median(self.done))


def _connections(n, degree, rng):
    """Return ``(dst, src)`` arrays of the directed connections."""
    if n - 1 <= degree:
        dst, src = np.nonzero(~np.eye(n, dtype=bool))
        return dst.astype(np.int32), src.astype(np.int32)
    # Each host opens degree / 2 connections to random others; a
    # connection carries pieces both ways.
    half = max(1, degree // 2)
    a = np.repeat(np.arange(n), half)
    b = (a + rng.integers(1, n, size=a.size)) % n
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(lo.astype(np.int64) * n + hi)
    lo, hi = (pairs // n).astype(np.int32), (pairs % n).astype(np.int32)
    return np.concatenate([lo, hi]), np.concatenate([hi, lo])


def _priorities(n, pieces, rng):
    """Return ``(levels - priority) * pieces`` per host and piece (int32).

    The priorities are those of each host's bands (a random home); the
    factor leaves room below it for a tie-break in [0, pieces).
    """
    first = (rng.random(n) * pieces).astype(np.int64) % pieces
    offset = (np.arange(pieces)[None, :] - first[:, None]) % pieces
    band = offset * len(BAND_PRIORITIES) // pieces
    weights = (PRIORITY_LEVELS - np.array(BAND_PRIORITIES)) * pieces
    return weights.astype(np.int32)[band]


def _tie_breaks(n, pieces, rng):
    """Each host's own random order of pieces (libtorrent shuffles)."""
    return rng.permuted(np.tile(np.arange(pieces, dtype=np.int32), (n, 1)),
                        axis=1)


class _Bits(object):
    """A set of pieces per host, packed 64 to a word."""

    def __init__(self, hosts, pieces):
        self.pieces = pieces
        self.words = np.zeros((hosts, -(-pieces // 64)), dtype=np.uint64)

    def set(self, hosts, pieces):
        np.bitwise_or.at(self.words, (hosts, pieces >> 6),
                         np.left_shift(np.uint64(1),
                                       (pieces & 63).astype(np.uint64)))

    def clear(self, hosts, pieces):
        np.bitwise_and.at(self.words, (hosts, pieces >> 6),
                          ~np.left_shift(np.uint64(1),
                                         (pieces & 63).astype(np.uint64)))

    def has(self, hosts, pieces):
        word = self.words[hosts, pieces >> 6]
        return (word >> (pieces & 63).astype(np.uint64)) & np.uint64(1) > 0


def unpack(words, pieces):
    """Bool array (rows x pieces) of packed ``words`` (rows x W)."""
    return np.unpackbits(words.view(np.uint8), axis=1, count=pieces,
                         bitorder='little').astype(bool)


class _Links(object):
    """Link capacities and the max-min sharing of flows over them."""

    def __init__(self, s):
        n = s.hosts
        racks = -(-n // s.rack_hosts) if s.rack_hosts else 0
        self.rack = (np.arange(n) // s.rack_hosts if s.rack_hosts
                     else np.zeros(n, dtype=np.int64))
        caps = np.concatenate([
            np.full(n, s.host_bps), [s.origin_bps],
            np.full(n, s.host_down_bps),
            np.full(2 * racks, s.rack_bps or 0.0), [np.inf]]) * s.goodput
        self.caps = caps
        self.n = n
        self.racks = racks
        self.none = caps.size - 1

    def of_swarm(self, dst, src):
        """Link ids (flows x 4) of transfers from ``src`` to ``dst``."""
        n = self.n
        links = np.empty((dst.size, 4 if self.racks else 2), dtype=np.int64)
        links[:, 0] = src
        links[:, 1] = n + 1 + dst
        if self.racks:
            cross = self.rack[src] != self.rack[dst]
            links[:, 2] = np.where(cross, 2 * n + 1 + self.rack[src],
                                   self.none)
            links[:, 3] = np.where(cross, 2 * n + 1 + self.racks +
                                   self.rack[dst], self.none)
        return links

    def of_origin(self, dst):
        """Link ids of first copies to ``dst``."""
        n = self.n
        links = np.full((dst.size, 4 if self.racks else 2), self.none,
                        dtype=np.int64)
        links[:, 0] = n
        links[:, 1] = n + 1 + dst
        if self.racks:
            links[:, 3] = 2 * n + 1 + self.racks + self.rack[dst]
        return links

    def share(self, links):
        """Max-min fair rates of flows over ``links`` (progressive filling).

        :returns: bits/s per flow.
        """
        flows = links.shape[0]
        rate = np.zeros(flows)
        if not flows:
            return rate
        left = self.caps.copy()
        active = np.ones(flows, dtype=bool)
        size = left.size
        for _ in range(FILL_ROUNDS):
            used = links[active]
            if not used.size:
                break
            count = np.bincount(used.ravel(), minlength=size)
            count[self.none] = 0
            fair = np.where(count > 0, left / np.maximum(count, 1), np.inf)
            inc = fair[used].min(axis=1)
            inc[~np.isfinite(inc)] = 0.0
            rate[active] += inc
            left -= np.bincount(used.ravel(),
                                weights=np.repeat(inc, used.shape[1]),
                                minlength=size)
            left[self.none] = np.inf
            full = left <= self.caps * 1e-9
            active &= ~full[links].any(axis=1)
        return rate


def simulate(s, seed=0, dt=None, max_seconds=None):
    """Distribute one torrent over swarm ``s``; return a :class:`Result`.

    :param dt: the shortest step in seconds; default half a piece's time
        at a host's full rate. Steps grow to a tenth of the median
        time left of the transfers under way (many connections sharing
        each link make each transfer slow).
    :param max_seconds: give up after this simulated time (default: 50
        times the longer of S_c through a host and through the origin).
    :raises RuntimeError: the swarm did not finish in ``max_seconds``.
    """
    return _Run(s, seed, dt, max_seconds).run()


class _Run(object):
    """The state of one simulation (see :func:`simulate`)."""

    def __init__(self, s, seed, dt, max_seconds):
        self.s = s
        rng = self.rng = np.random.default_rng(seed)
        n, p = s.hosts, s.pieces
        self.bits = s.piece_bits()
        self.dt = dt or s.piece_bytes * 8.0 / (
            2 * min(s.host_bps, s.host_down_bps))
        self.max_seconds = max_seconds or 50 * max(
            s.bound, s.artifact_bytes * 8.0 / s.origin_bps) + 60
        self.links = _Links(s)
        self.weight = _priorities(n, p, rng)
        self.tie = _tie_breaks(n, p, rng)
        self.have = _Bits(n, p)
        self.inflight = _Bits(n, p)
        self.visible = _Bits(n, p)
        self.avail = np.zeros(p, dtype=np.int32)
        self.finished = np.full(n, np.nan)
        self.left_pieces = np.full(n, p)
        self.announce = []  # heap of (time, host, piece)
        self.dst, self.src = _connections(n, s.connections, rng)
        self.conn_links = self.links.of_swarm(self.dst, self.src)
        self.piece = np.full(self.dst.size, -1, dtype=np.int64)
        self.remaining = np.zeros(self.dst.size)
        # Bits a connection or fetch that finished inside a step could
        # still have moved by the step's end: its next piece starts with
        # them (requests are pipelined), so steps do not slow transfers.
        self.credit = np.zeros(self.dst.size)
        self.recheck = np.ones(self.dst.size, dtype=bool)
        self.injectors = rng.permutation(n)[:min(n, s.streams)]
        self.inj_links = self.links.of_origin(self.injectors)
        self.inj_piece = np.full(self.injectors.size, -1, dtype=np.int64)
        self.inj_left = np.zeros(self.injectors.size)
        self.inj_ready = np.zeros(self.injectors.size)
        self.inj_credit = np.zeros(self.injectors.size)
        self.next_first = 0
        self.origin_bits = 0.0

    def run(self):
        t, steps = 0.0, 0
        while np.isnan(self.finished).any():
            if t > self.max_seconds:
                raise RuntimeError('the swarm did not finish in %.0f s of '
                                   'simulated time' % self.max_seconds)
            self._announced(t)
            self._first_copies(t)
            t = self._transfer(t)
            steps += 1
        return Result(self.finished, self.origin_bits /
                      (self.s.artifact_bytes * 8.0), steps)

    def _announced(self, t):
        """Make the pieces announced by ``t`` visible; fill connections."""
        gained = np.zeros(self.s.hosts, dtype=bool)
        hosts, pieces = [], []
        while self.announce and self.announce[0][0] <= t:
            _when, host, pc = heapq.heappop(self.announce)
            hosts.append(host)
            pieces.append(pc)
        if hosts:
            hosts, pieces = np.array(hosts), np.array(pieces)
            self.visible.set(hosts, pieces)
            np.add.at(self.avail, pieces, 1)
            gained[hosts] = True
        check = np.nonzero((self.piece < 0) &
                           (self.recheck | gained[self.src]) &
                           np.isnan(self.finished)[self.dst])[0]
        self.recheck[:] = False
        if check.size:
            self._assign(check)
        self.credit[self.piece < 0] = 0.0

    def _first_copies(self, t):
        """Idle first-copy fetchers take the next pieces, in order."""
        idle = np.nonzero((self.inj_piece < 0) & (self.inj_ready <= t))[0]
        self.inj_credit[self.inj_ready < t - self.dt] = 0.0
        for i in idle[:max(0, self.s.pieces - self.next_first)]:
            self.inj_piece[i] = self.next_first
            self.inj_left[i] = self.bits[self.next_first] - \
                self.inj_credit[i]
            self.origin_bits += self.bits[self.next_first]
            self.next_first += 1

    def _transfer(self, t):
        """Share the links, move every transfer on one step; return t."""
        busy = np.nonzero(self.piece >= 0)[0]
        fetching = np.nonzero(self.inj_piece >= 0)[0]
        flows = np.concatenate([self.conn_links[busy],
                                self.inj_links[fetching]])
        rates = self.links.share(flows)
        # Each uplink's queue: frames per flow crossing it, drained at its
        # rate (seconds).
        n = self.s.hosts
        count = np.bincount(flows[:, 0], minlength=n + 1)
        self.queue = (self.s.latency + self.s.queue_frames * count *
                      FRAME_BYTES * 8.0 / self.links.caps[:n + 1] *
                      self.s.goodput)
        conn_rate, inj_rate = rates[:busy.size], rates[busy.size:]
        dt = self.dt
        if busy.size:
            ahead = self.remaining[busy] / np.maximum(conn_rate, 1e-9)
            dt = max(dt, float(np.median(ahead)) / STEP_DIVISOR)
        end = t + dt
        self.remaining[busy] -= conn_rate * dt
        over = self.remaining[busy] <= 0
        if over.any():
            done = busy[over]
            self._complete(self.dst[done], self.piece[done],
                           end + self.remaining[done] / conn_rate[over])
            self.piece[done] = -1
            self.recheck[done] = True
            self.credit[done] = -self.remaining[done]
        self.inj_left[fetching] -= inj_rate * dt
        over = self.inj_left[fetching] <= 0
        if over.any():
            got = fetching[over]
            at = end + self.inj_left[got] / inj_rate[over]
            self._complete(self.injectors[got], self.inj_piece[got], at)
            self.inj_ready[got] = (at + self.queue[self.injectors[got]] +
                                   self.queue[n])
            self.inj_credit[got] = np.maximum(
                0.0, end - self.inj_ready[got]) * inj_rate[over]
            self.inj_piece[got] = -1
        return end

    def _complete(self, hosts, pieces, at):
        """Record that ``hosts`` completed ``pieces`` at times ``at``."""
        self.have.set(hosts, pieces)
        self.inflight.clear(hosts, pieces)
        np.subtract.at(self.left_pieces, hosts, 1)
        delay = self.queue[hosts].tolist()
        for host, pc, when, wait in zip(hosts.tolist(), pieces.tolist(),
                                        at.tolist(), delay):
            heapq.heappush(self.announce, (when + wait, host, pc))
            if self.left_pieces[host] == 0:
                self.finished[host] = max(
                    when, np.nan_to_num(self.finished[host]))

    def _assign(self, check):
        """Give each connection in ``check`` the piece its agent picks.

        A connection whose peer has nothing wanted stays idle until the
        peer announces a piece. Two connections of one agent that pick
        the same piece in one step: the first gets it, the other picks
        again.
        """
        p = self.s.pieces
        for _round in range(4):
            losers = []
            for start in range(0, check.size, CHUNK):
                part = check[start:start + CHUNK]
                d = self.dst[part]
                wanted = (self.visible.words[self.src[part]] &
                          ~self.have.words[d] & ~self.inflight.words[d])
                some = wanted.any(axis=1)
                if not some.any():
                    continue
                part, d = part[some], d[some]
                wanted = unpack(wanted[some], p)
                key = self.weight[d] * (self.avail + 1) + self.tie[d]
                key[~wanted] = np.iinfo(np.int32).max
                choice = key.argmin(axis=1)
                # One connection per (agent, piece): the first wins.
                _u, first = np.unique(d.astype(np.int64) * p + choice,
                                      return_index=True)
                won = np.zeros(part.size, dtype=bool)
                won[first] = True
                self.piece[part[won]] = choice[won]
                self.remaining[part[won]] = (self.bits[choice[won]] -
                                             self.credit[part[won]])
                self.credit[part[won]] = 0.0
                self.inflight.set(d[won], choice[won])
                losers.append(part[~won])
            check = (np.concatenate(losers) if losers
                     else np.empty(0, np.int64))
            if not check.size:
                return
        self.recheck[check] = True
