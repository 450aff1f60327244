"""Downloading one torrent from a swarm, its bytes passed on in order.

Pieces arrive in any order; the artifact's bytes must leave in order (the
agent decompresses and hashes them as a stream). The choice made here:

* **rarest-first stays libtorrent's piece picker.** A purely sequential
  download would have every agent ask for the same piece at the same time
  -- from the seed, the only one that has it -- and the seed would upload
  the artifact once per agent, which is what BitTorrent is there to
  avoid. Piece deadlines (``set_piece_deadline``) do the same on a smaller
  scale: time-critical pieces are requested from whoever has them, again
  the seed, ignoring rarity.
* **each agent starts in a band of its own** (``home``): the torrent is
  cut into four bands of falling priority, rotated to start at a place
  derived from the agent's host name (:func:`home_priorities`). Plain
  rarest-first makes every agent ask the seed for the same rarest pieces
  at the start (measured: the seed sent 2.3 copies to 8 agents); with
  bands, agents ask for different pieces, and trade them.
* **an optional window of priority ahead of the in-order prefix**
  (``window``, 0 by default): the next pieces after the last one passed
  on get the top priority. It makes agents want the same pieces again;
  on the test bed (8 agents, 1 MiB pieces) a window of 4 was no faster
  (32.1 s against 31.1 s without), so it is off unless asked for.
* **each piece is read back with ``read_piece`` once it passed its hash
  check**, through libtorrent's own disk layer (a piece may be checked
  before its last block reached the file). One read is outstanding at a
  time, so memory stays at a piece or two.

So decompression and hashing follow the in-order prefix as it grows;
what arrives out of order waits on disk, and at worst the tail of the
stream is processed after the last piece arrives: for a 1.3 GB image,
about 2 s of decompression and hashing at the measured rates, against
the transfer's minutes.

With ``inject_url`` (the built-in tracker's first copies), an
:class:`~precache.torrent.injector.Injector` thread adds the pieces the
tracker assigns to this agent, fetched from the origin; the listed peers
(the seed) are then connected only when that fails, or when the download
makes no progress for ``seed_fallback_delay`` seconds once the injector
is done.

A download fails with :class:`SwarmError` (and a precise reason) when it
makes no progress for ``stall_timeout`` seconds, when too many pieces fail
their hash check, or on a storage error. Web seeds (the torrent's
``url-list``) are not used at first: they are added after ``web_seed_delay``
seconds without progress from peers, so the origin's web server only
feeds a swarm that cannot feed itself.
"""

import queue
import time

import libtorrent as lt
from oslo_log import log as logging

from precache.torrent import injector as injector_mod
from precache.torrent import metainfo
from precache.torrent import pieces as pieces_mod
from precache.torrent import progress as progress_mod
from precache.torrent import session as session_mod

LOG = logging.getLogger(__name__)

#: Raised when the swarm cannot deliver (:mod:`precache.torrent.progress`).
SwarmError = progress_mod.SwarmError

#: Top piece priority, for the window ahead of the in-order prefix.
TOP_PRIORITY = 7
#: Seconds between two looks at the torrent's status.
TICK = 0.5
#: Seconds between two debug lines on a download's progress.
STATUS_LOG_INTERVAL = 2.0
#: Pieces failing their hash check before the download gives up.
MAX_HASH_FAILURES = 10
#: Seconds without progress, once first copies are no longer fetched,
#: before the listed peers (the seed) are connected after all; the
#: default of ``[bittorrent_source] seed_fallback_delay``.
SEED_FALLBACK_DELAY = 5.0
#: Seconds without any peer connected before the trackers are asked for
#: peers again (and again at this interval while it lasts).
REANNOUNCE_WHEN_ALONE = 10.0


class SwarmDownload(object):
    """Downloads one torrent into ``save_path`` and yields it in order.

    :param session: the :class:`~precache.torrent.session.Session`.
    :param params: ``add_torrent_params`` from
        :func:`precache.torrent.metainfo.load`.
    :param save_path: directory for the torrent's file.
    :param peers: ``host:port`` strings of peers to connect to.
    :param stall_timeout: see :class:`Watchdog`.
    :param web_seed_delay: see :class:`Watchdog`.
    :param window: pieces ahead of the in-order prefix to prefer.
    :param home: where in the torrent this agent starts, in [0, 1)
        (:func:`home_priorities`); None leaves every piece at the
        default priority.
    :param handle: a handle of the same torrent already in the session
        (seeding after an earlier download) to read from instead.
    :param inject_url: the built-in tracker's first-copy URL: pieces are
        fetched from the origin as it says (:mod:`injector`), and the
        listed peers are connected only if that fails or stalls.
    :param seed_fallback_delay: seconds without progress once the first
        copies are no longer fetched before the listed peers are
        connected after all.
    :param progress: None, or a function called every :data:`TICK` with
        the bytes of verified pieces so far, passed on or not, and once
        more when every piece is in.
    """

    def __init__(self, session, params, save_path, peers, stall_timeout,
                 web_seed_delay, window, home=None, handle=None,
                 inject_url=None, seed_fallback_delay=SEED_FALLBACK_DELAY,
                 progress=None):
        self.session = session
        self.key = session_mod.info_hash(params.ti)
        self.num_pieces = params.ti.num_pieces()
        self.size = params.ti.total_size()
        self.save_path = save_path
        self.peers = list(peers)
        self.stall_timeout = stall_timeout
        self.web_seed_delay = web_seed_delay
        self.seed_fallback_delay = seed_fallback_delay
        self.window = window
        self._progress = progress
        self._web_seeds = list(params.url_seeds)
        self._events = queue.Queue()
        self._hash_failures = 0
        self._next_status_log = 0
        self._alone = progress_mod.AloneTimer(REANNOUNCE_WHEN_ALONE)
        #: Bytes yielded so far.
        self.passed_on = 0
        if handle is not None:
            self.handle = handle
            session.subscribe(self.key, self._events)
        else:
            params.save_path = save_path
            if home is not None:
                params.piece_priorities = pieces_mod.home_priorities(
                    self.num_pieces, home)
            if web_seed_delay != 0:
                # Replaced by this empty list; added back when due.
                params.url_seeds = []
                params.flags |= lt.torrent_flags.override_web_seeds
            self.handle = session.add_torrent(params, self._events)
        self._endpoints = self._resolve(self.peers)
        self.transfer = progress_mod.Transfer(self._endpoints)
        self.injector = None
        if inject_url and self._web_seeds and handle is None:
            self.injector = injector_mod.Injector(
                self.handle, inject_url, self._web_seeds[0], self.key)
        #: Whether the listed peers may be connected.
        self._listed_peers_on = self.injector is None
        if self._listed_peers_on:
            self._connect()

    @staticmethod
    def _resolve(peers):
        endpoints = []
        for peer in peers:
            try:
                endpoints.extend(metainfo.resolve_peer(peer))
            except ValueError as exc:
                LOG.warning('Ignoring peer %s: %s', peer, exc)
        return endpoints

    def _connect(self):
        for endpoint in self._endpoints:
            try:
                self.handle.connect_peer(endpoint)
            except RuntimeError as exc:
                LOG.debug('connect_peer %s failed: %s', endpoint, exc)

    def pieces(self):
        """Yield the torrent's bytes in order, a piece at a time.

        :raises SwarmError: the swarm cannot deliver (see the module).
        """
        cursor = pieces_mod.PieceCursor(self.num_pieces, self.window)
        for piece in range(self.num_pieces):
            if self.handle.have_piece(piece):
                cursor.finished(piece)
        watchdog = progress_mod.Watchdog(self.stall_timeout,
                                         self.web_seed_delay, time.monotonic())
        if self.injector is not None:
            self.injector.start()
        next_look = 0
        while not cursor.complete:
            piece = cursor.take()
            if piece is not None:
                self.handle.read_piece(piece)
            for boosted in cursor.to_boost():
                self.handle.piece_priority(boosted, TOP_PRIORITY)
            try:
                event = self._events.get(timeout=TICK)
            except queue.Empty:
                event = None
            if event is not None:
                data = self._handle(event, cursor)
                if data is not None:
                    self.passed_on += len(data)
                    yield data
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + TICK
                self._look(watchdog)
        if self._progress is not None:
            # However fast the download was, its last report is the whole.
            self._progress(self.handle.status().total_wanted_done)

    def _handle(self, event, cursor):
        """Act on one event; return the bytes of a piece read, if any."""
        if event.kind == session_mod.PIECE_FINISHED:
            cursor.finished(event.piece)
            # Web seed connections close as soon as the last piece is
            # in: sample while they are open.
            self.transfer.sample(self.handle.get_peer_info())
        elif event.kind == session_mod.PIECE_READ:
            if event.error:
                raise SwarmError('reading piece %d back failed: %s'
                                 % (event.piece, event.error))
            cursor.read(event.piece)
            return event.data
        elif event.kind == session_mod.HASH_FAILED:
            self._hash_failures += 1
            LOG.warning('Torrent %s: piece %d failed its hash check (%d)',
                        self.key, event.piece, self._hash_failures)
            if self._hash_failures >= MAX_HASH_FAILURES:
                raise SwarmError('%d pieces failed their hash check (last: '
                                 'piece %d); peers or web seeds send bytes '
                                 'that are not the torrent\'s'
                                 % (self._hash_failures, event.piece))
        elif event.kind == session_mod.TORRENT_ERROR:
            raise SwarmError('torrent error: %s' % event.error)
        return None

    def _look(self, watchdog):
        status = self.handle.status()
        if status.errc.value():
            raise SwarmError('torrent error: %s' % status.errc.message())
        if self._progress is not None:
            self._progress(status.total_wanted_done)
        if status.is_seeding:
            return
        peers = self.handle.get_peer_info()
        self.transfer.sample(peers)
        now = time.monotonic()
        if not self._listed_peers_on:
            self._fall_back_on_listed_peers(watchdog, now)
        if self._listed_peers_on and not self._listed_connected(peers):
            # The seed does not announce to the built-in tracker: keep
            # asking for it until a connection holds.
            self._connect()
        self._reannounce_when_alone(status, now)
        if now >= self._next_status_log:
            self._next_status_log = now + STATUS_LOG_INTERVAL
            LOG.debug('Torrent %s: %d of %d pieces, %d bytes passed on, '
                      'down %d B/s, up %d B/s, %d peer(s) (%d seed(s)), '
                      '%d in the swarm per trackers, %d known (%d to '
                      'try)', self.key,
                      status.num_pieces, self.num_pieces,
                      self.passed_on, status.download_payload_rate,
                      status.upload_payload_rate, status.num_peers,
                      status.num_seeds, status.num_incomplete +
                      status.num_complete, status.list_peers,
                      status.connect_candidates)
        progress = status.total_wanted_done + status.total_payload_download
        try:
            action = watchdog.observe(progress, time.monotonic())
        except SwarmError as exc:
            raise SwarmError(
                '%s: %d of %d pieces, %d peer(s) connected (%d seed(s)) of '
                '%d known, initial peers %s, web seeds %s'
                % (exc, status.num_pieces, self.num_pieces, status.num_peers,
                   status.num_seeds, status.list_peers,
                   ', '.join(self.peers) or 'none',
                   ', '.join(self._web_seeds) or 'none'))
        if action == watchdog.WEB_SEEDS and self._web_seeds:
            LOG.info('Torrent %s: adding web seed(s) %s after %.0f s '
                     'without progress from peers (%d of %d pieces)',
                     self.key, ', '.join(self._web_seeds),
                     self.web_seed_delay, status.num_pieces,
                     self.num_pieces)
            for url in self._web_seeds:
                self.handle.add_url_seed(url)

    def _reannounce_when_alone(self, status, now):
        """Ask the trackers for peers again while none is connected.

        An agent whose connection attempts all failed (every peer busy,
        links slow to answer) would otherwise wait for libtorrent to try
        them again; a tracker's answer makes each peer it names a
        candidate again.
        """
        if self._alone.due(status.num_peers, now):
            LOG.info('Torrent %s: no peer connected for %.0f s (%d known, '
                     '%d to try): asking the trackers for peers again',
                     self.key, REANNOUNCE_WHEN_ALONE, status.list_peers,
                     status.connect_candidates)
            self.handle.force_reannounce()

    def _listed_connected(self, peers):
        """Tell whether a listed peer (or none is listed) is connected."""
        if not self._endpoints:
            return True
        listed = set(self._endpoints)
        return any(tuple(peer.ip) in listed for peer in peers)

    def _fall_back_on_listed_peers(self, watchdog, now):
        """Connect the listed peers if first copies fail or stall."""
        injector = self.injector
        if injector.error:
            reason = 'fetching first copies failed'
        elif (not injector.running and
              watchdog.idle(now) >= self.seed_fallback_delay):
            reason = ('no progress for %.0f s after the first copies'
                      % watchdog.idle(now))
        else:
            return
        LOG.info('Torrent %s: connecting the listed peers (%s): %s',
                 self.key, ', '.join(self.peers) or 'none', reason)
        self._listed_peers_on = True
        self._connect()

    def detach(self):
        """Stop receiving the torrent's events; it stays in the session."""
        if self.injector is not None:
            self.injector.stop()
        self.transfer.sample(self.handle.get_peer_info())
        self.transfer.total = self.handle.status().total_payload_download
        self.session.subscribe(self.key, None)
