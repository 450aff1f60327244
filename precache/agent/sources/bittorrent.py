"""Downloading an artifact from a BitTorrent swarm.

The agent joins the swarm of the torrent in the ``bittorrent`` source:
it connects to the ``peers`` listed there (the service's seed), learns
the other agents from the torrent's trackers (the service's built-in one
first, :mod:`precache.torrent.tracker`) and through peer exchange,
fetches the first copies of the pieces the tracker assigns to it from the
origin (``first_copies``, :mod:`precache.torrent.injector`; the
tracker's URLs in the torrent and ``inject_url`` carry the torrent's
passkey, which the built-in tracker requires, and are used as they come),
downloads into ``download_dir`` starting with a band of pieces chosen by
its host name (``spread_pieces``), and passes the artifact's bytes on in
order as the in-order prefix of pieces grows (how, and why not
sequentially: :mod:`precache.torrent.swarm`). It uploads to every agent
that asks. The torrent's web seeds (the ``http`` server's URL) come in
only when the peers stop delivering.

Once the last byte is passed on, the image is verified and lands as from
any source; meanwhile the torrent keeps seeding in the background for
``seed_time`` seconds or up to ``seed_ratio`` (see
:mod:`precache.torrent.seeding`), then its data is removed. An agent that
stops removes every torrent and its data; one that was killed finds its
leftovers in ``download_dir`` and removes them when it next uses
BitTorrent.

Before anything connects, the torrent's trackers and web seeds, the
source's ``inject_url`` and its ``peers`` (as ``bittorrent://host:port/``)
must all be under ``[agent] allowed_origins`` (see
:mod:`precache.agent.origins`), whether or not this agent's options would
use them; otherwise the source fails. Peers learnt from the tracker or
through peer exchange are other agents and are not checked (every piece
is verified against the torrent's hashes). libtorrent follows a
tracker's redirects itself: with ``allowed_origins`` set, the session
sends its tracker requests through a local checking proxy
(:mod:`precache.agent.tracker_guard`), which refuses a redirect target
outside the list before connecting, and uses no libtorrent web seeds
(they would follow redirects unchecked); the first copies are fetched by
precache itself without following redirects, and the plain ``http``
source listed after this one serves when the swarm stalls.

A swarm that makes no progress for ``stall_timeout`` seconds, a torrent
that is not valid or does not match the source, repeated hash failures
and storage errors raise :class:`~precache.common.exception.SourceFailed` with
the reason, and the Downloader tries the next source (the plain ``http``
one the ``bittorrent`` server lists after it).

All downloads of the agent share one libtorrent session, created on first
use and listening on ``listen_host``:``listen_port``; DHT, LSD, UPnP and
NAT-PMP are off, uTP too unless ``enable_utp`` is set.
"""

import hashlib
import os
import shutil
import threading

from oslo_config import cfg
from oslo_log import log as logging

from precache.agent import origins as origins_mod
from precache.agent.sources import base
from precache.agent import tracker_guard
from precache.torrent import metainfo
from precache.torrent import seeding
from precache.torrent import session as session_mod
from precache.torrent import swarm

LOG = logging.getLogger(__name__)

GROUP = 'bittorrent_source'

bittorrent_source_opts = [
    cfg.StrOpt('download_dir',
               default='$state_path/bittorrent',
               help='Directory for the torrents being downloaded and '
                    'seeded, one sub-directory per torrent. It needs room '
                    'for the compressed artifacts of the images being '
                    'downloaded or seeded at the same time. precache owns '
                    'it: what it holds is removed when the agent first '
                    'uses BitTorrent and when it stops.'),
    cfg.HostAddressOpt('listen_host',
                       default='0.0.0.0',
                       help='Address the agent\'s BitTorrent session '
                            'listens on for other agents. Every IPv4 '
                            'address by default; a specific address keeps '
                            'the swarm on one network.'),
    cfg.PortOpt('listen_port',
                default=6881,
                help='TCP port of the agent\'s BitTorrent session; 0 picks '
                     'a free port (other agents learn it through peer '
                     'exchange).'),
    cfg.BoolOpt('enable_utp',
                default=False,
                help='Accept and make uTP connections besides TCP.'),
    cfg.IntOpt('upload_rate_limit',
               default=0, min=0,
               help='Bytes per second this agent uploads to other agents, '
                    'while downloading and while seeding; 0 means no cap.'),
    cfg.IntOpt('seed_time',
               default=300, min=0,
               help='Seconds a downloaded torrent keeps being seeded to '
                    'other agents after its download; the image lands '
                    'without waiting. 0 stops seeding at once.'),
    cfg.FloatOpt('seed_ratio',
                 default=2.0, min=0.0,
                 help='Stop seeding a torrent before seed_time once this '
                      'agent uploaded this many times its size; 0 means '
                      'seed_time alone decides.'),
    cfg.IntOpt('stall_timeout',
               default=60, min=1,
               help='Seconds without any progress (no peer and no web seed '
                    'delivering) after which the swarm counts as failed '
                    'and the next source is tried.'),
    cfg.IntOpt('web_seed_delay',
               default=10, min=-1,
               help='Seconds without progress from peers after which the '
                    'torrent\'s web seeds (the origin\'s HTTP URL) are '
                    'used as well. 0 uses them from the start (the origin '
                    'then serves every agent directly, as over http); -1 '
                    'never. Ignored (never) when [agent] allowed_origins '
                    'is set: libtorrent would follow a web seed\'s '
                    'redirects unchecked.'),
    cfg.BoolOpt('first_copies',
                default=True,
                help='When the source names the service\'s built-in '
                     'tracker (its inject_url), fetch the pieces the '
                     'tracker assigns to this host from the origin\'s web '
                     'server and trade the rest with the other agents, '
                     'without connecting to the seed: every piece leaves '
                     'the origin once. The seed is connected only if that '
                     'fails or stalls. Off, this agent downloads from the '
                     'seed and the other agents alike.'),
    cfg.FloatOpt('seed_fallback_delay',
                 default=swarm.SEED_FALLBACK_DELAY, min=0.0,
                 help='With first_copies: seconds without progress, once '
                      'this agent fetches no more first copies, after '
                      'which it connects the seed after all. Raise it on '
                      'busy hosts where the swarm can pause for seconds, '
                      'so the seed does not send pieces the other agents '
                      'would have; lower it to lean on the seed sooner.'),
    cfg.BoolOpt('spread_pieces',
                default=True,
                help='Start with the pieces of a band of the torrent '
                     'chosen by this host\'s name, then the next bands, '
                     'so that agents ask the seed for different pieces '
                     'and have pieces to trade with each other. Off, every '
                     'agent asks for the rarest pieces, at first the same '
                     'ones from the seed.'),
    cfg.IntOpt('stream_window',
               default=0, min=0,
               help='Pieces after the in-order prefix that get top '
                    'priority, so decompression and hashing can follow '
                    'the download closely. 0 leaves the order to '
                    'rarest-first alone (best for the swarm, the stream '
                    'then waits more).'),
]


class BitTorrentSource(base.ImageSource):
    """Downloads the torrent of a ``bittorrent`` source from its swarm."""

    method = 'bittorrent'

    def __init__(self, conf):
        super().__init__(conf)
        self._lock = threading.Lock()
        self._session = None
        self._guard = None
        self._seeding = None

    @classmethod
    def get_config_group(cls):
        return GROUP

    @classmethod
    def get_config_opts(cls):
        return bittorrent_source_opts

    def locator(self, source):
        return 'info-hash %s' % source.get('info_hash')

    def _swarm_parts(self):
        """Return the session and seeding pool, created on first use."""
        with self._lock:
            if self._session is None:
                opts = self.options
                _empty(opts.download_dir)
                settings = session_mod.settings(
                    opts.listen_host, opts.listen_port, opts.enable_utp,
                    opts.upload_rate_limit, self.conf.agent.bandwidth_limit)
                if not origins_mod.Origins.from_conf(self.conf).unrestricted:
                    self._guard = tracker_guard.TrackerGuard(
                        lambda: origins_mod.Origins.from_conf(self.conf))
                    self._guard.start()
                    settings.update(self._guard.session_settings())
                self._session = session_mod.Session(settings, name='agent')
                self._seeding = seeding.SeedingPool(
                    self._session, opts.seed_time, opts.seed_ratio)
            return self._session, self._seeding

    #: A swarm's pieces arrive in any order (see :mod:`swarm`).
    receives_ahead = True

    def iter_chunks(self, image, source, progress=None):
        params = self._params(image, source)
        self._check_origins(image, source, params)
        session, seeding_pool = self._swarm_parts()
        key = source['info_hash'].lower()
        directory = os.path.join(self.options.download_dir, key)
        earlier = seeding_pool.take(key)
        opts = self.options
        try:
            download = swarm.SwarmDownload(
                session, params, directory, source.get('peers') or [],
                opts.stall_timeout,
                # libtorrent's web seeds would follow redirects unchecked.
                -1 if self._guard else opts.web_seed_delay,
                opts.stream_window,
                home=self._home() if opts.spread_pieces else None,
                handle=earlier.handle if earlier else None,
                inject_url=(source.get('inject_url')
                            if opts.first_copies else None),
                seed_fallback_delay=opts.seed_fallback_delay,
                progress=progress)
        except RuntimeError as exc:
            raise self.failed(image, source,
                              'libtorrent refused the torrent: %s' % exc)
        complete = False
        try:
            yield from download.pieces()
            complete = True
        except swarm.SwarmError as exc:
            raise self.failed(image, source, str(exc))
        finally:
            download.detach()
            transfer = download.transfer
            LOG.info('Image %s: torrent %s %s; about %d bytes from the '
                     'listed peers, %d from other peers, %d from web '
                     'seeds, %d from connections closed unsampled',
                     image.id, key,
                     'downloaded' if complete else 'abandoned',
                     transfer.received(transfer.LISTED),
                     transfer.received(transfer.OTHERS),
                     transfer.received(transfer.WEB_SEEDS),
                     transfer.received(transfer.UNKNOWN))
            if complete:
                seeding_pool.add(key, download.handle, directory,
                                 download.size)
            else:
                session.remove_torrent(download.handle, delete_files=True)
                shutil.rmtree(directory, ignore_errors=True)

    def _home(self):
        """This host's place in a torrent's pieces, from its name."""
        digest = hashlib.sha1(self.conf.host.encode()).digest()
        return int.from_bytes(digest[:8], 'big') / 2.0 ** 64

    def _params(self, image, source):
        """Read and check the source's torrent.

        :raises SourceFailed: invalid, or not the announced artifact.
        """
        try:
            params = metainfo.load(source['torrent'])
        except ValueError as exc:
            raise self.failed(image, source, str(exc))
        key = session_mod.info_hash(params.ti)
        if key != source['info_hash'].lower():
            raise self.failed(image, source,
                              'the torrent\'s info-hash is %s' % key)
        size = source.get('size')
        if size is not None and params.ti.total_size() != size:
            raise self.failed(image, source,
                              'the torrent describes %d bytes, the source '
                              'announced %d'
                              % (params.ti.total_size(), size))
        return params

    def _check_origins(self, image, source, params):
        """Refuse a torrent naming anything outside the allowed origins.

        :raises SourceFailed: a tracker, web seed, ``inject_url`` or peer
            is not under ``[agent] allowed_origins``.
        """
        origins = origins_mod.Origins.from_conf(self.conf)
        urls = ([('a tracker\'s', url) for url in params.trackers] +
                [('a web seed\'s', url) for url in params.url_seeds] +
                [('a peer\'s', origins_mod.peer_url(peer))
                 for peer in source.get('peers') or []])
        if source.get('inject_url'):
            urls.append(('the inject_url\'s', source['inject_url']))
        try:
            for what, url in urls:
                origins.check(url, what)
        except origins_mod.Refused as exc:
            raise self.failed(image, source, str(exc))

    def close(self):
        """Stop seeding, close the session and remove the downloads."""
        with self._lock:
            session, self._session = self._session, None
            seeding_pool, self._seeding = self._seeding, None
            guard, self._guard = self._guard, None
        if session is None:
            return
        seeding_pool.close()
        session.close()
        if guard is not None:
            guard.stop()
        _empty(self.options.download_dir)


def _empty(directory):
    """Create ``directory`` or remove everything in it."""
    os.makedirs(directory, exist_ok=True)
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
