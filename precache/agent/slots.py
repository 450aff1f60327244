"""Download slots: held by downloads that make progress, given out fairly.

The agent runs at most ``[agent] max_concurrent_downloads`` downloads at
full speed. A request takes a :class:`Ticket` when it arrives and waits
for a slot; a download that then falls below ``min_download_rate`` for
``slow_download_grace`` seconds *parks* (:mod:`precache.agent.pacing`):
it gives its slot to the next request and goes on in the background, a
trickle that costs no bandwidth, still bounded by its own deadline and
minimum rate. Should it speed up again it waits for a slot before it
reads on. So a source trickling a byte every few seconds holds a slot
for a few seconds, not for its whole ``min_rate_window``::

    cast ──► admit ──► waiting ──► active ──(slow)──► parked ──► done
               │          ▲          ▲                  │
            (busy)   (evicted)       └────(fast again)──┘

Everything is bounded: at most ``max_concurrent_downloads`` active,
``max_parked_downloads`` parked (a slow download finding the parking
full fails, freeing its slot) and ``max_queued_requests`` waiting;
beyond those a request is refused (``busy``) at once. Each admitted
request costs a few threads and one connection, so the agent's threads,
sockets and temporary files stay bounded whatever is cast at it.

Fairness between origins (the host:port a request downloads from first,
see :func:`origin_of`): a free slot goes to the waiting request whose
origin has the fewest downloads active or parked, the oldest first among
equals; and when the queue is full, a request from an origin with fewer
waiting requests than the busiest origin takes the place of that origin's
newest waiting request, which is answered ``busy``. A flood of casts from
one origin therefore cannot delay a request from another one by more
than ``slow_download_grace`` seconds.
"""

import collections
import itertools
import threading
import urllib.parse

#: Seconds between two looks at the cancel event of a waiting request.
_POLL = 0.2

WAITING = 'waiting'
ACTIVE = 'active'
PARKED = 'parked'
RESUMING = 'resuming'
EVICTED = 'evicted'
DONE = 'done'

#: States holding a download (a slot or a parking place).
_RUNNING = (ACTIVE, PARKED, RESUMING)
#: States waiting for a slot.
_WANTING = (WAITING, RESUMING)


def origin_of(sources):
    """Return the origin a request downloads from first.

    :param sources: ``meta['sources']`` (already validated).
    :returns: ``scheme://host:port`` of the first source's URL (its
        ``url``, else its ``inject_url``), else the first source's method.
    """
    if not sources:
        return ''
    source = sources[0]
    url = source.get('url') or source.get('inject_url')
    if url:
        try:
            parts = urllib.parse.urlsplit(url)
            return '%s://%s:%s' % (parts.scheme.lower(),
                                   (parts.hostname or '').lower(),
                                   parts.port or '')
        except ValueError:
            pass
    return str(source.get('method'))


class Evicted(Exception):
    """A waiting request gave its place to a request of another origin."""


class Ticket(object):
    """One request's place in :class:`DownloadSlots`.

    :ivar origin: the request's origin (:func:`origin_of`).
    :ivar state: ``waiting``, ``active``, ``parked``, ``resuming``,
        ``evicted`` or ``done``.
    """

    def __init__(self, slots, origin, seq):
        self._slots = slots
        self.origin = origin
        self.seq = seq
        self.state = WAITING

    @property
    def active(self):
        return self.state == ACTIVE

    @property
    def parked(self):
        return self.state == PARKED

    def park(self):
        """Give up the slot; see :meth:`DownloadSlots.park`."""
        return self._slots.park(self)

    def resume(self, cancel):
        """Take a slot back; see :meth:`DownloadSlots.resume`."""
        return self._slots.resume(self, cancel)

    def parking_limit(self):
        """The current ``max_parked_downloads``."""
        return self._slots.parked_limit()


class DownloadSlots(object):
    """The agent's download slots, parking places and queue.

    Thread-safe. The limits are callables, read at every use, so mutable
    options take effect at once.

    :param active_limit: returns the number of slots.
    :param parked_limit: returns the number of parking places.
    :param queue_limit: returns how many requests may wait for a slot.
    """

    def __init__(self, active_limit, parked_limit, queue_limit):
        self.active_limit = active_limit
        self.parked_limit = parked_limit
        self.queue_limit = queue_limit
        self._cond = threading.Condition()
        self._tickets = []
        self._seq = itertools.count()

    @classmethod
    def from_conf(cls, conf):
        """Return the slots the ``[agent]`` options describe."""
        agent = conf.agent
        return cls(lambda: agent.max_concurrent_downloads,
                   lambda: agent.max_parked_downloads,
                   lambda: agent.max_queued_requests)

    def counts(self):
        """Return ``{state: number of tickets}``."""
        with self._cond:
            return collections.Counter(t.state for t in self._tickets)

    def __len__(self):
        with self._cond:
            return len(self._tickets)

    # Admission -------------------------------------------------------------

    def admit(self, origin, bounded=True):
        """Return a waiting :class:`Ticket`, or None when the queue is full.

        :param origin: the request's origin (:func:`origin_of`).
        :param bounded: refuse (None) when ``queue_limit`` requests
            already wait and none can be evicted; otherwise (the agent's
            own desired-set pass, one request at a time) always admit.
        """
        with self._cond:
            if bounded and not self._has_room(origin):
                return None
            ticket = Ticket(self, origin, next(self._seq))
            self._tickets.append(ticket)
            return ticket

    def _has_room(self, origin):
        waiting = [t for t in self._tickets if t.state == WAITING]
        # A request that would run at once does not wait.
        if not waiting and self._count((ACTIVE,)) < self.active_limit():
            return True
        if len(waiting) < self.queue_limit():
            return True
        if not waiting:
            return False
        per_origin = collections.Counter(t.origin for t in waiting)
        busiest, most = per_origin.most_common(1)[0]
        if most <= per_origin[origin] + 1:
            return False
        victim = max((t for t in waiting if t.origin == busiest),
                     key=lambda t: t.seq)
        victim.state = EVICTED
        self._cond.notify_all()
        return True

    # Slots -------------------------------------------------------------

    def acquire(self, ticket, cancel):
        """Wait until ``ticket`` holds a slot.

        :param cancel: a :class:`threading.Event`, or anything with
            ``is_set()``, polled while waiting.
        :returns: True once active; False when ``cancel`` was set.
        :raises Evicted: the ticket gave its place to another origin's.
        """
        return self._wait_for_slot(ticket, cancel)

    def park(self, ticket):
        """Give up ``ticket``'s slot while its download goes on slowly.

        :returns: True if parked; False when every parking place is taken
            (the ticket keeps its slot: the caller should end the
            download).
        """
        with self._cond:
            if ticket.state != ACTIVE:
                return ticket.state == PARKED
            if self._count((PARKED, RESUMING)) >= self.parked_limit():
                return False
            ticket.state = PARKED
            self._cond.notify_all()
            return True

    def resume(self, ticket, cancel):
        """Wait until a parked ``ticket`` holds a slot again.

        It keeps its parking place meanwhile and goes before waiting
        requests of origins with more downloads.

        :returns: True once active; False when ``cancel`` was set (the
            ticket stays parked).
        """
        with self._cond:
            if ticket.state != PARKED:
                return ticket.state == ACTIVE
            ticket.state = RESUMING
            ticket.seq = next(self._seq)
        return self._wait_for_slot(ticket, cancel, giving_up=PARKED)

    def release(self, ticket):
        """Forget ``ticket``: its request ended (in any state)."""
        with self._cond:
            ticket.state = DONE
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            self._cond.notify_all()

    def _wait_for_slot(self, ticket, cancel, giving_up=WAITING):
        with self._cond:
            while True:
                if ticket.state == EVICTED:
                    raise Evicted()
                if self._is_next(ticket):
                    ticket.state = ACTIVE
                    self._cond.notify_all()
                    return True
                if cancel is not None and cancel.is_set():
                    ticket.state = giving_up
                    self._cond.notify_all()
                    return False
                self._cond.wait(_POLL)

    def _is_next(self, ticket):
        """Whether a slot is free and ``ticket`` is the one to get it."""
        if self._count((ACTIVE,)) >= self.active_limit():
            return False
        running = collections.Counter(
            t.origin for t in self._tickets if t.state in _RUNNING)
        wanting = [t for t in self._tickets if t.state in _WANTING]
        return ticket is min(
            wanting, key=lambda t: (running[t.origin], t.seq), default=None)

    def _count(self, states):
        return sum(1 for t in self._tickets if t.state in states)
