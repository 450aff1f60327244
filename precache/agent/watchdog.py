"""When a download from one source must give up: deadline and rate.

A source may be hostile or broken in ways no single read shows: it may
trickle a byte every few seconds (each read returns before the read
timeout) or never end. :class:`Watchdog` bounds the whole download from
one source by ``[agent] download_deadline`` and the bytes it delivers in
each ``[agent] min_rate_window`` by ``min_download_rate``.

What counts as delivered is what the stream yielded, or more when the
source says it received bytes it cannot yield yet (:meth:`Watchdog.ahead`):
a swarm receives pieces in any order and yields them in order, so a
download whose in-order prefix waits for one piece while the rest pours
in is not slow.

It is the :class:`~precache.common.streams.Prefetcher`'s ``cancel``: the
consumer polls :meth:`Watchdog.is_set` for every chunk and every
:data:`~precache.common.streams.CANCEL_POLL` seconds while it waits, so a
bound is enforced within a fraction of a second even while the read
thread is blocked in a read. :attr:`Watchdog.reason` then says which
bound was passed; without a reason the agent is stopping.
"""

import contextlib
import threading
import time


class Watchdog(object):
    """Deadline and minimum rate of one download from one source.

    Thread-safe: the read thread counts bytes and pauses the rate check
    while it waits for the bandwidth cap; the consumer polls
    :meth:`is_set`.

    :param deadline: seconds the download may take in all; 0 or None
        means no deadline.
    :param min_rate: bytes per second the source must deliver on average
        over each window; 0 or None disables the check.
    :param window: seconds of each rate window.
    :param stopping: an optional :class:`threading.Event` set when the
        agent stops; :meth:`is_set` is true once it is set.
    :param clock: monotonic time source (for tests).
    """

    def __init__(self, deadline, min_rate, window, stopping=None,
                 clock=time.monotonic):
        self._stopping = stopping
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._deadline_seconds = deadline
        self._deadline = now + deadline if deadline else None
        self._min_rate = min_rate or 0
        self._window = window
        self._window_start = now
        self._window_base = 0
        self._started = now
        self._paused_at = None
        self._pauses = 0
        self._paused_total = 0.0
        #: Bytes counted so far (yielded by the stream).
        self.received = 0
        #: Bytes the source said it received so far, yielded or not.
        self._ahead = 0
        #: Why the download must end; None while it may go on.
        self.reason = None

    @classmethod
    def from_conf(cls, conf, stopping=None):
        """Return a watchdog with the ``[agent]`` options' bounds."""
        agent = conf.agent
        return cls(agent.download_deadline, agent.min_download_rate,
                   agent.min_rate_window, stopping)

    def count(self, amount):
        """Account for ``amount`` bytes received from the source."""
        with self._lock:
            self.received += amount

    def ahead(self, total):
        """Note that the source received ``total`` bytes so far.

        For sources that receive bytes before they can yield them (a
        swarm's pieces out of order): they count as delivered.
        """
        with self._lock:
            self._ahead = max(self._ahead, total)

    @property
    def delivered(self):
        """Bytes delivered so far: yielded, or received ahead of that."""
        return max(self.received, self._ahead)

    @contextlib.contextmanager
    def paused(self):
        """Do not count the time spent in the block against the rate.

        For waits that are the agent's own choice (its bandwidth cap),
        not the source's slowness. The deadline still runs.
        """
        with self._lock:
            self._pauses += 1
            if self._pauses == 1:
                self._paused_at = self._clock()
        try:
            yield
        finally:
            with self._lock:
                self._pauses -= 1
                if self._pauses == 0:
                    paused = self._clock() - self._paused_at
                    self._window_start += paused
                    self._paused_total += paused
                    self._paused_at = None

    def active_seconds(self):
        """Seconds since the start, the time in :meth:`paused` left out."""
        with self._lock:
            now = self._clock()
            paused = self._paused_total
            if self._paused_at is not None:
                paused += now - self._paused_at
            return now - self._started - paused

    def stopping(self):
        """Return True if the agent is stopping."""
        return self._stopping is not None and self._stopping.is_set()

    def is_set(self):
        """Return True once the download must end (see :attr:`reason`)."""
        if self.reason is not None or self.stopping():
            return True
        with self._lock:
            self.reason = self._check(self._clock())
        return self.reason is not None

    def _check(self, now):
        if self._deadline is not None and now >= self._deadline:
            return ('the download did not end within [agent] '
                    'download_deadline (%s s); %d bytes received'
                    % (self._deadline_seconds, self.received))
        if not self._min_rate or self._paused_at is not None:
            return None
        elapsed = now - self._window_start
        if elapsed < self._window:
            return None
        delivered = self.delivered
        window_bytes = delivered - self._window_base
        if window_bytes < self._min_rate * elapsed:
            return ('the source delivered %d bytes in %.1f s (%.0f bytes/s), '
                    'below [agent] min_download_rate of %d bytes/s'
                    % (window_bytes, elapsed, window_bytes / elapsed,
                       self._min_rate))
        self._window_start, self._window_base = now, delivered
        return None
