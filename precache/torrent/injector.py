"""Fetching the first copy of pieces from the origin, as the tracker says.

The origin's uplink is the one link every byte of an image must cross at
least once; in a plain swarm the seed sends some pieces several times
(agents ask it for the same rare pieces at once) and others late. With
the built-in tracker, an :class:`Injector` per download asks the tracker
(``GET /inject``, see :class:`precache.torrent.registry.FirstCopies`)
which piece to fetch, fetches that piece's bytes with an HTTP range
request from the origin's web server (the torrent's web seed), and adds
them to the torrent (``add_piece``): libtorrent checks the piece's hash
and announces it to the other agents, who take it from this one. Each
piece leaves the origin once, in order, and the swarm starts trading
after the first piece.

The tracker hands first copies only to peers of the swarm: the injector
starts asking once the torrent's first announce was answered (asking
before it was refused, and that agent took its pieces from the seed).

The injector runs in a thread of its own. It stops when the tracker says
every piece was confirmed, when the download ends, or on the first
error, which it keeps in :attr:`Injector.error` for the download to fall
back on the seed.
"""

import threading
import time
import urllib.parse

import libtorrent as lt
from oslo_log import log as logging
import requests
from requests import adapters
from urllib3.util import retry as urllib3_retry

LOG = logging.getLogger(__name__)

#: Seconds to wait before asking again when the tracker says ``wait``
#: (it already held the request while it could).
WAIT_INTERVAL = 0.1
#: Seconds a request to the tracker or the origin may take.
TIMEOUT = 30.0
#: Seconds :meth:`Injector.stop` waits for a request in flight; the
#: thread ends by itself after it.
STOP_WAIT = 1.0
#: Times a GET is sent again when its connection failed or was closed.
RETRIES = 2
#: Seconds between two looks at whether a tracker answered an announce.
ANNOUNCE_POLL = 0.05


def http_session():
    """Return the requests session of an injector.

    Redirects are errors (their target would not be checked against
    ``[agent] allowed_origins``). A GET whose connection broke is sent
    again, up to :data:`RETRIES` times: the tracker closes a keep-alive
    connection left idle beyond its head timeout (10 s), which a fetch
    on a slow or busy link outlasts, and the next request on it would
    otherwise end the first copies for good. Both requests are
    idempotent (a piece taken twice is handed out again after its lease).
    """
    session = requests.Session()
    session.max_redirects = 0
    retries = urllib3_retry.Retry(
        total=RETRIES, connect=RETRIES, read=RETRIES, status=0, other=0,
        redirect=0, allowed_methods=frozenset(['GET']),
        raise_on_status=False, raise_on_redirect=False)
    adapter = adapters.HTTPAdapter(max_retries=retries)
    session.mount('http://', adapter)
    session.mount('https://', adapter)
    return session


class InjectError(Exception):
    """The tracker or the origin did not deliver; the message says why."""


def byte_range(piece, piece_length, total_size):
    """Return ``(first, last)`` byte offsets of ``piece``, inclusive."""
    first = piece * piece_length
    last = min(total_size, first + piece_length) - 1
    if first > last:
        raise InjectError('piece %d is beyond the torrent\'s %d bytes'
                          % (piece, total_size))
    return first, last


class Injector(object):
    """Fetches the pieces the tracker assigns into one torrent.

    :param handle: the torrent's handle.
    :param inject_url: the tracker's first-copy URL, with the torrent's
        passkey in its query string.
    :param web_seed: the URL of the artifact on the origin's web server.
    :param key: the torrent's hex info-hash.
    """

    def __init__(self, handle, inject_url, web_seed, key):
        self.handle = handle
        self.inject_url = inject_url
        self.web_seed = web_seed
        self.key = key
        info = handle.torrent_file()
        self.piece_length = info.piece_length()
        self.total_size = info.total_size()
        #: Pieces fetched and added.
        self.injected = 0
        #: Why injection stopped early, or None.
        self.error = None
        self._stop = threading.Event()
        self._http = http_session()
        self._thread = threading.Thread(
            target=self._run, name='precache-inject-%s' % key[:8],
            daemon=True)

    def start(self):
        self._thread.start()

    @property
    def running(self):
        return self._thread.is_alive()

    def stop(self):
        """Stop; wait a moment for a request in flight.

        A download that ends must not wait for a long-polled answer of
        the tracker: the thread (a daemon) finishes that request on its
        own and then stops without touching the torrent.
        """
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(STOP_WAIT)

    def _run(self):
        confirmed = []
        try:
            self._wait_for_announce()
            confirmed = self._fetch_assigned()
            LOG.debug('Torrent %s: %d first cop%s fetched from the origin',
                      self.key, self.injected,
                      'y' if self.injected == 1 else 'ies')
        except (InjectError, requests.RequestException, RuntimeError) as exc:
            if not self._stop.is_set():
                self.error = str(exc)
                LOG.warning('Torrent %s: fetching first copies stopped '
                            'after %d piece(s): %s', self.key, self.injected,
                            exc)
        finally:
            if confirmed and self._complete():
                self._confirm(confirmed)
            self._http.close()

    def _wait_for_announce(self):
        """Wait until a tracker answered the torrent's announce.

        :raises InjectError: none did within :data:`TIMEOUT` seconds.
        """
        deadline = time.monotonic() + TIMEOUT
        while not self.handle.status().current_tracker:
            if time.monotonic() >= deadline:
                raise InjectError('no tracker answered the torrent\'s '
                                  'announce within %.0f s' % TIMEOUT)
            if self._stop.wait(ANNOUNCE_POLL):
                return

    def _complete(self):
        """Tell whether the torrent has every piece (it will seed them).

        The last pieces of an abandoned download are not confirmed: its
        data goes, and another agent gets them after the lease.
        """
        try:
            return self.handle.status().is_seeding
        except RuntimeError:  # removed meanwhile
            return False

    def _fetch_assigned(self):
        """Fetch what the tracker assigns; return pieces left to confirm.

        Each piece is confirmed with the next request; when the download
        ends first, the last pieces are returned for :meth:`_confirm`.
        """
        confirmed = []
        while not self._stop.is_set():
            answer = self._ask(confirmed)
            confirmed = []
            if b'done' in answer:
                break
            if b'wait' in answer:
                self._stop.wait(WAIT_INTERVAL)
                continue
            piece = answer.get(b'piece')
            if not isinstance(piece, int):
                raise InjectError('the tracker answered %r' % answer)
            if self._stop.is_set():
                # Handed out as the download ended: it is in, or
                # another agent gets it after the lease.
                if self.handle.have_piece(piece):
                    confirmed.append(piece)
                break
            if not self.handle.have_piece(piece):
                self._inject(piece)
            confirmed.append(piece)
        return confirmed

    def _confirm(self, pieces):
        """Tell the tracker, without taking more, that ``pieces`` are in.

        Best effort: unconfirmed pieces are handed out again after their
        lease.
        """
        query = urllib.parse.urlencode(
            [('info_hash', self.key), ('take', 0)] +
            [('done', p) for p in pieces])
        try:
            self._http.get(self._url(query), timeout=STOP_WAIT)
        except requests.RequestException as exc:
            LOG.debug('Torrent %s: confirming first copies %s failed: %s',
                      self.key, pieces, exc)

    def _url(self, query):
        """The first-copy URL with ``query`` added to its own (passkey)."""
        separator = '&' if '?' in self.inject_url else '?'
        return self.inject_url + separator + query

    def _ask(self, confirmed):
        query = urllib.parse.urlencode(
            [('info_hash', self.key)] + [('done', p) for p in confirmed])
        response = self._http.get(self._url(query), timeout=TIMEOUT)
        if response.status_code != 200:
            raise InjectError('the tracker answered HTTP %d'
                              % response.status_code)
        try:
            answer = lt.bdecode(response.content)
        except RuntimeError:
            answer = None
        if not isinstance(answer, dict):
            raise InjectError('the tracker\'s answer is not a dictionary')
        if b'failure reason' in answer:
            raise InjectError('the tracker refused: %s' % answer[
                b'failure reason'].decode('utf-8', 'replace'))
        return answer

    def _inject(self, piece):
        first, last = byte_range(piece, self.piece_length, self.total_size)
        started = time.monotonic()
        response = self._http.get(
            self.web_seed, timeout=TIMEOUT,
            headers={'Range': 'bytes=%d-%d' % (first, last)})
        if response.status_code != 206:
            raise InjectError('the origin answered HTTP %d to a range '
                              'request for piece %d'
                              % (response.status_code, piece))
        data = response.content
        if len(data) != last - first + 1:
            raise InjectError('the origin sent %d bytes of piece %d, '
                              'expected %d' % (len(data), piece,
                                               last - first + 1))
        # libtorrent checks the piece's hash; a mismatch comes back as a
        # hash failure, counted by the download like any other.
        self.handle.add_piece(piece, data, 0)
        self.injected += 1
        LOG.debug('Torrent %s: piece %d fetched from the origin in %.2f s',
                  self.key, piece, time.monotonic() - started)
