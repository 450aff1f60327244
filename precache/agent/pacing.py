"""Parking a download that makes no progress, so it frees its slot.

A :class:`Pacer` watches one download from one source: the bytes its
:class:`~precache.agent.watchdog.Watchdog` counted over the last
``[agent] slow_download_grace`` seconds (time spent waiting for the
agent's own bandwidth cap left out). Below ``min_download_rate`` it parks
the download's :class:`~precache.agent.slots.Ticket`: the slot goes to
the next request at once, while the download goes on in the background
until it ends or its watchdog gives up on it. A parked download that
delivers ``min_download_rate`` again waits for a slot before it reads on
(its reads then block, the source's sending with them). When every
parking place is taken the slow download fails instead, with a reason
saying so. With ``max_parked_downloads`` 0 nothing parks: a slow download
keeps its slot until its watchdog fails it.

Like the watchdog it stands for, the pacer is the download's
:class:`~precache.common.streams.Prefetcher` ``cancel``: it is polled for
every chunk and every fraction of a second while the consumer waits.
"""

import collections

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Seconds between two samples of the bytes received.
_SAMPLE_EVERY = 0.25


class Pacer(object):
    """Parks and resumes one download's ticket according to its rate.

    :param watchdog: the download's
        :class:`~precache.agent.watchdog.Watchdog`.
    :param ticket: the request's :class:`~precache.agent.slots.Ticket`, or
        None (the pacer then only stands for the watchdog).
    :param min_rate: bytes per second below which the download parks; 0
        never parks.
    :param grace: seconds the rate is measured over.
    :param label: what the log messages call the download.
    """

    def __init__(self, watchdog, ticket, min_rate, grace, label=''):
        self._watchdog = watchdog
        self._ticket = ticket if min_rate else None
        self._min_rate = min_rate
        self._grace = grace
        self._label = label
        self._samples = collections.deque()
        self._reason = None

    @classmethod
    def from_conf(cls, conf, watchdog, ticket, label=''):
        agent = conf.agent
        return cls(watchdog, ticket, agent.min_download_rate,
                   agent.slow_download_grace, label)

    @property
    def reason(self):
        """Why the download must end; None while it may go on."""
        return self._reason or self._watchdog.reason

    def is_set(self):
        """Return True once the download must end (see :attr:`reason`)."""
        if self._reason is not None or self._watchdog.is_set():
            return True
        if self._ticket is None:
            return False
        rate = self._rate()
        if rate is None:
            return False
        if self._ticket.active and rate < self._min_rate:
            self._park(rate)
        elif self._ticket.parked and rate >= self._min_rate:
            self._resume(rate)
        return self._reason is not None

    def _rate(self):
        """Bytes/s over the last ``grace`` seconds; None until known."""
        now = self._watchdog.active_seconds()
        received = self._watchdog.delivered
        samples = self._samples
        if not samples or now - samples[-1][0] >= _SAMPLE_EVERY:
            samples.append((now, received))
        while len(samples) > 1 and samples[1][0] <= now - self._grace:
            samples.popleft()
        since, base = samples[0]
        if now - since < self._grace:
            return None
        return (received - base) / (now - since)

    def _park(self, rate):
        if not self._ticket.parking_limit():
            return  # Parking is off: the watchdog alone decides.
        if self._ticket.park():
            LOG.info('%s: %.0f bytes/s over %s s, below [agent] '
                     'min_download_rate: it gives up its download slot '
                     'and goes on in the background', self._label, rate,
                     self._grace)
            self._samples.clear()
            return
        self._reason = (
            'the source delivered %.0f bytes/s over the last %s s, below '
            '[agent] min_download_rate of %d bytes/s, and all %d places '
            'for slow downloads ([agent] max_parked_downloads) are taken'
            % (rate, self._grace, self._min_rate,
               self._ticket.parking_limit()))

    def _resume(self, rate):
        LOG.info('%s: %.0f bytes/s again, waiting for a download slot',
                 self._label, rate)
        with self._watchdog.paused():
            self._ticket.resume(self._watchdog)
        self._samples.clear()
