"""Watching one swarm download: stalls, loneliness, bytes per sender.

Part of :mod:`precache.torrent.swarm`: :class:`Watchdog` decides when to
call the web seeds and when to give up, :class:`AloneTimer` when to ask
the trackers again, :class:`Transfer` counts what each kind of sender
sent (for logs).
"""

import collections

import libtorrent as lt

_WEB_SEED_TYPES = (lt.peer_info.web_seed, lt.peer_info.http_seed)


class SwarmError(Exception):
    """The swarm cannot deliver the torrent; the message says why."""


class Watchdog(object):
    """Decides when to call the web seeds and when to give up.

    :param stall_timeout: seconds without progress before giving up.
    :param web_seed_delay: seconds without progress before the web seeds
        are added; negative means never, 0 at once.
    :param now: the current monotonic time.
    """

    WEB_SEEDS = 'web_seeds'

    def __init__(self, stall_timeout, web_seed_delay, now):
        self.stall_timeout = stall_timeout
        self.web_seed_delay = web_seed_delay
        self._web_seeds_due = web_seed_delay > 0
        self._progress = None
        self._since = now

    def idle(self, now):
        """Return the seconds since the last progress observed."""
        return now - self._since

    def observe(self, progress, now):
        """Note the download's ``progress`` (any growing number).

        :returns: :attr:`WEB_SEEDS` once when the web seeds are due, else
            None.
        :raises SwarmError: no progress for ``stall_timeout`` seconds.
        """
        if progress != self._progress:
            self._progress = progress
            self._since = now
        idle = now - self._since
        if idle >= self.stall_timeout:
            raise SwarmError('no progress for %.0f s' % idle)
        if self._web_seeds_due and idle >= self.web_seed_delay:
            self._web_seeds_due = False
            return self.WEB_SEEDS
        return None


class AloneTimer(object):
    """Says when a download without any peer connected should act.

    :param interval: seconds without a peer before :meth:`due` says so,
        and between two times it says so while it lasts.
    """

    def __init__(self, interval):
        self.interval = interval
        self._since = None

    def due(self, peers_connected, now):
        """Note how many peers are connected; tell whether to act now."""
        if peers_connected:
            self._since = None
            return False
        if self._since is None:
            self._since = now
            return False
        if now - self._since >= self.interval:
            self._since = now
            return True
        return False


class Transfer(object):
    """Bytes received per kind of sender, from samples of the peer list.

    Kinds: the peers listed in the source (the seed), the other peers
    (agents found through peer exchange or a tracker), and web seeds.
    libtorrent counts per connection: what a connection received after
    the last sample and before it closed cannot be told apart, and is
    reported as :attr:`UNKNOWN` (the torrent's total less the rest). The
    figures are for logs.

    :param listed: ``(ip, port)`` endpoints of the listed peers.
    """

    LISTED, OTHERS, WEB_SEEDS, UNKNOWN = ('listed', 'others', 'web seeds',
                                          'unknown')

    def __init__(self, listed=()):
        self._listed = set(listed)
        self._seen = collections.defaultdict(int)
        #: The torrent's payload bytes received, set by the owner.
        self.total = 0

    def sample(self, peers):
        for peer in peers:
            endpoint = tuple(peer.ip)
            if peer.connection_type in _WEB_SEED_TYPES:
                kind = self.WEB_SEEDS
            elif endpoint in self._listed:
                kind = self.LISTED
            else:
                kind = self.OTHERS
            key = (kind, endpoint)
            self._seen[key] = max(self._seen[key], peer.total_download)

    def received(self, kind):
        """Return the bytes received from senders of ``kind``."""
        if kind == self.UNKNOWN:
            known = sum(self._seen.values())
            return max(0, self.total - known)
        return sum(v for (k, _e), v in self._seen.items() if k == kind)
