"""A token bucket capping the bytes per second the agent receives.

One bucket is shared by every download of the process (see
:func:`shared`): ``[agent] bandwidth_limit`` caps their sum, not each of
them. Consumers account for bytes *after* receiving them and then sleep
off their share of any debt, so the bucket works with chunks larger than
its burst and never holds a lock while sleeping.
"""

import threading
import time

#: Seconds of traffic the bucket may save up while downloads are idle.
BURST_SECONDS = 0.25


class TokenBucket(object):
    """Rate limiter shared by threads.

    :param rate: a callable returning the current cap in bytes per second;
        0 (or less) means no cap. It is called on every
        :meth:`consume`, so a mutable option takes effect at once.
    :param burst_seconds: how many seconds of traffic may pass at full
        speed after an idle period.
    :param clock: monotonic time source (for tests).
    :param sleep: sleep function (for tests).
    """

    def __init__(self, rate, burst_seconds=BURST_SECONDS,
                 clock=time.monotonic, sleep=time.sleep):
        self._rate_fn = rate
        self._burst_seconds = burst_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = 0
        self._tokens = 0.0
        self._stamp = clock()

    def consume(self, amount):
        """Account for ``amount`` bytes received; sleep if over the cap.

        :returns: the seconds slept.
        """
        rate = self._rate_fn()
        if rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            if rate != self._rate:
                # A new cap: start from an empty bucket, forget old debt.
                self._rate, self._tokens = rate, 0.0
            else:
                self._tokens = min(rate * self._burst_seconds,
                                   self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            self._tokens -= amount
            delay = -self._tokens / rate if self._tokens < 0 else 0.0
        if delay > 0:
            self._sleep(delay)
        return delay


_shared = None
_shared_lock = threading.Lock()


def shared(conf):
    """Return the process's bucket, capped by ``[agent] bandwidth_limit``.

    :param conf: the process's ConfigOpts; the option is read on every
        use, so a reload changes the cap of running downloads too.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TokenBucket(lambda: conf.agent.bandwidth_limit)
        return _shared
