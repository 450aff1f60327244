"""One libtorrent session and the dispatch of its alerts.

libtorrent reports what happens through alerts that the application pops
from the session. :class:`Session` pops them in one thread and hands each
torrent's events to the queue that subscribed to the torrent's info-hash,
as plain :class:`Event` tuples: an alert's memory (a piece read from
disk, for instance) is only valid until the next pop, so it is copied out
at once.

Nothing in the session reaches outside the networks precache is told
about: DHT, local service discovery, UPnP and NAT-PMP are off; uTP is off
unless asked for (TCP alone was about 20 % faster on shaped links). Rate
limits apply to every peer, including those on the local network, which
libtorrent exempts by default.
"""

import collections
import threading
import time

import libtorrent as lt
from oslo_log import log as logging

from precache.common import exception

LOG = logging.getLogger(__name__)

#: Milliseconds the dispatcher waits for an alert before checking whether
#: it should stop.
_WAIT_MS = 250
#: Seconds between two runs of the choker.
UNCHOKE_INTERVAL = 1
#: Lowest announce interval accepted from a tracker, in seconds.
MIN_ANNOUNCE_INTERVAL = 5
#: Seconds to wait for the session to listen.
LISTEN_TIMEOUT = 10.0
#: Seconds before a peer that failed to connect is tried again.
RECONNECT_INTERVAL = 5
#: Failed connection attempts before a peer is no longer tried (each
#: tracker answer naming it takes one failure back).
MAX_CONNECT_FAILURES = 30
#: Seconds allowed for a TCP connection, and for the BitTorrent
#: handshake after it.
CONNECT_TIMEOUT = 30

_ALERT_MASK = (lt.alert.category_t.error_notification |
               lt.alert.category_t.status_notification |
               lt.alert.category_t.storage_notification |
               lt.alert.category_t.piece_progress_notification)

#: What a subscriber receives: ``kind`` is one of the constants below,
#: ``piece`` a piece index or None, ``data`` the bytes of a piece read,
#: ``error`` a message or None.
Event = collections.namedtuple('Event', 'kind piece data error')

PIECE_FINISHED = 'piece_finished'
PIECE_READ = 'piece_read'
HASH_FAILED = 'hash_failed'
TORRENT_ERROR = 'torrent_error'


def settings(listen_host, listen_port, enable_utp=False,
             upload_rate_limit=0, download_rate_limit=0, user_agent=None,
             upload_slots=-1):
    """Return the settings_pack dict of a precache session.

    :param listen_host: address to listen on (``0.0.0.0`` for all).
    :param listen_port: TCP (and uTP) port; 0 picks a free one.
    :param enable_utp: allow uTP as well as TCP.
    :param upload_rate_limit: bytes/s uploaded by the session; 0 is none.
    :param download_rate_limit: bytes/s downloaded; 0 is none.
    :param upload_slots: peers uploaded to at the same time; -1 is every
        interested peer.
    """
    host = '[%s]' % listen_host if ':' in listen_host else listen_host
    return {
        'listen_interfaces': '%s:%d' % (host, listen_port),
        'enable_dht': False,
        'enable_lsd': False,
        'enable_upnp': False,
        'enable_natpmp': False,
        'enable_outgoing_utp': enable_utp,
        'enable_incoming_utp': enable_utp,
        'enable_outgoing_tcp': True,
        'enable_incoming_tcp': True,
        # Every agent of a test bed, or hosts behind one NAT, share an
        # address.
        'allow_multiple_connections_per_ip': True,
        # Obfuscation (RC4) costs CPU on every byte and hides nothing from
        # the cloud's own network.
        'out_enc_policy': int(lt.enc_policy.pe_disabled),
        'in_enc_policy': int(lt.enc_policy.pe_disabled),
        'upload_rate_limit': upload_rate_limit,
        'download_rate_limit': download_rate_limit,
        # Every peer is a precache agent or seed, all cooperating: no
        # tit-for-tat. Agents upload to every interested peer; the seed
        # to a few at a time, taking turns every UNCHOKE_INTERVAL.
        'choking_algorithm': int(lt.choking_algorithm_t.fixed_slots_choker),
        'unchoke_slots_limit': upload_slots,
        'unchoke_interval': UNCHOKE_INTERVAL,
        # Announce to the built-in tracker and the operator's alike, as
        # often as they ask (libtorrent's floor is 5 minutes).
        'announce_to_all_tiers': True,
        'announce_to_all_trackers': True,
        'min_announce_interval': MIN_ANNOUNCE_INTERVAL,
        # Every peer is a host of the cloud, and a failed connection
        # (a link whose queue holds seconds, a host busy landing) says
        # little about the next: try again after seconds, for as long as
        # the swarm lasts. libtorrent's Internet defaults (60 s between
        # attempts, no more after 3 failures, a 10 s handshake) left
        # agents of a 48-host swarm knowing 40 peers and connected to
        # none for a minute.
        'min_reconnect_time': RECONNECT_INTERVAL,
        'max_failcount': MAX_CONNECT_FAILURES,
        'peer_connect_timeout': CONNECT_TIMEOUT,
        'handshake_timeout': CONNECT_TIMEOUT,
        'alert_mask': _ALERT_MASK,
        'user_agent': user_agent or 'precache',
    }


def info_hash(handle_or_info):
    """Return the hex v1 info-hash of a torrent handle or torrent_info."""
    return str(handle_or_info.info_hashes().v1)


class Session(object):
    """A libtorrent session listening on one address, shared by threads.

    :param settings_pack: a dict from :func:`settings`.
    :param name: what to call the session in logs and errors.
    :raises ConfigurationError: the session cannot listen.
    """

    def __init__(self, settings_pack, name='bittorrent'):
        self.name = name
        self._session = lt.session(settings_pack)
        self._apply_limits_to_local_peers()
        self._lock = threading.Lock()
        self._subscribers = {}
        self._stop = threading.Event()
        self.port = self._wait_listening(settings_pack['listen_interfaces'])
        self._thread = threading.Thread(target=self._dispatch,
                                        name='precache-%s-alerts' % name,
                                        daemon=True)
        self._thread.start()

    def _apply_limits_to_local_peers(self):
        # By default peers on local networks (loopback, 10/8, ...) are in
        # a class without limits; put every address in the global class.
        peer_filter = lt.ip_filter()
        global_class = 1 << self._session.global_peer_class_id
        peer_filter.add_rule('0.0.0.0', '255.255.255.255', global_class)
        peer_filter.add_rule('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
                             global_class)
        self._session.set_peer_class_filter(peer_filter)

    def _wait_listening(self, interfaces):
        deadline = time.monotonic() + LISTEN_TIMEOUT
        while time.monotonic() < deadline:
            self._session.wait_for_alert(_WAIT_MS)
            for alert in self._session.pop_alerts():
                if isinstance(alert, lt.listen_failed_alert):
                    raise exception.ConfigurationError(
                        reason='the %s session cannot listen on %s: %s'
                        % (self.name, interfaces, alert.message()))
                if isinstance(alert, lt.listen_succeeded_alert):
                    port = self._session.listen_port()
                    LOG.info('BitTorrent %s session listening on %s '
                             '(port %d)', self.name, interfaces, port)
                    return port
        raise exception.ConfigurationError(
            reason='the %s session did not listen on %s within %.0f s'
            % (self.name, interfaces, LISTEN_TIMEOUT))

    def add_torrent(self, params, events=None):
        """Add a torrent; send its events to the queue ``events``.

        :param params: an ``add_torrent_params``.
        :param events: a :class:`queue.Queue` receiving :class:`Event`
            tuples, or None.
        :returns: the torrent handle.
        """
        key = info_hash(params.ti)
        # precache starts and stops its torrents itself (seeding.py, the
        # seed's lifetime): libtorrent's queue must never pause one. An
        # auto-managed torrent (its default) can be paused by it, which
        # left the service's seed paused and unreachable.
        params.flags &= ~(lt.torrent_flags.paused |
                          lt.torrent_flags.auto_managed)
        with self._lock:
            if events is not None:
                self._subscribers[key] = events
            try:
                return self._session.add_torrent(params)
            except RuntimeError:
                self._subscribers.pop(key, None)
                raise

    def find(self, key):
        """Return the handle of torrent ``key`` (hex info-hash), or None."""
        handle = self._session.find_torrent(lt.sha1_hash(bytes.fromhex(key)))
        return handle if handle.is_valid() else None

    def subscribe(self, key, events):
        """Send the events of torrent ``key`` to ``events`` (None: drop)."""
        with self._lock:
            if events is None:
                self._subscribers.pop(key, None)
            else:
                self._subscribers[key] = events

    def remove_torrent(self, handle, delete_files=False):
        """Remove a torrent; with ``delete_files`` its data goes too."""
        with self._lock:
            self._subscribers.pop(info_hash(handle), None)
        flags = lt.session.delete_files if delete_files else 0
        self._session.remove_torrent(handle, flags)

    def close(self):
        """Stop the dispatcher and destroy the session (closes sockets)."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._subscribers.clear()
        session, self._session = self._session, None
        session.pause()
        del session  # the destructor waits for libtorrent's threads
        LOG.info('BitTorrent %s session closed', self.name)

    def _dispatch(self):
        while not self._stop.is_set():
            try:
                self._session.wait_for_alert(_WAIT_MS)
                for alert in self._session.pop_alerts():
                    self._route(alert)
            except Exception:
                LOG.exception('BitTorrent %s session: handling alerts '
                              'failed', self.name)

    def _route(self, alert):
        event = _event(alert)
        if event is None:
            if alert.category() & lt.alert.category_t.error_notification:
                LOG.warning('BitTorrent %s session: %s', self.name,
                            alert.message())
            return
        with self._lock:
            events = self._subscribers.get(info_hash(alert.handle))
        if events is not None:
            events.put(event)


def _event(alert):
    """Return the :class:`Event` of a torrent alert, or None."""
    if isinstance(alert, lt.piece_finished_alert):
        return Event(PIECE_FINISHED, alert.piece_index, None, None)
    if isinstance(alert, lt.read_piece_alert):
        if alert.error.value():
            return Event(PIECE_READ, alert.piece, None,
                         alert.error.message())
        return Event(PIECE_READ, alert.piece, alert.buffer, None)
    if isinstance(alert, lt.hash_failed_alert):
        return Event(HASH_FAILED, alert.piece_index, None, None)
    if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
        return Event(TORRENT_ERROR, None, None, alert.message())
    return None
