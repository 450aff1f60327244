"""The ``bittorrent`` image server: a swarm seeded by the service.

The compressed artifact is made and served by the ``http`` server (its
``[http_server]`` options apply unchanged). This plugin describes that
file in a v1 torrent with an explicit piece size, lists the artifact's
HTTP URL in the torrent as a web seed (BEP 19), and seeds it from the
service's own libtorrent session in seed mode: the file was just written
and its sha256 checked by the ``http`` server, so it is not hashed again
for seeding (only once, to make the torrent, the first time the artifact
is served by this process).

``meta`` gets two sources: ``bittorrent`` first, the plain ``http`` one
after it as the fallback of agents without BitTorrent or whose swarm
stalls.

How agents find peers, without DHT or a public tracker:

* the seed's address (``peer_host``, port of the session) is always in
  the ``bittorrent`` source's ``peers``; every agent connects to it;
* peer exchange (``ut_pex``, on in every precache session) then tells
  the agents about each other: the seed passes on the addresses of the
  agents connected to it, so agents that join later connect to those that
  came first, and the swarm becomes a mesh without any other service;
* ``trackers`` optionally names an operator-run tracker (e.g. Debian's
  ``opentracker``) written into the torrent; agents announce to it too.
  Use one when agents cannot all reach the seed, or to speed up peer
  discovery in very large swarms (PEX messages go out once a minute).

DHT, local service discovery, UPnP and NAT-PMP are always off; uTP is off
unless ``enable_utp`` is set.
"""

import socket
import threading

import libtorrent as lt
from oslo_config import cfg
from oslo_log import log as logging

from precache import exception
from precache import plugin
from precache.servers import base
from precache.torrent import metainfo
from precache.torrent import session as session_mod

LOG = logging.getLogger(__name__)

GROUP = 'bittorrent_server'
_WILDCARD_HOSTS = ('', '0.0.0.0', '::')

bittorrent_server_opts = [
    cfg.HostAddressOpt('listen_host',
                       default='0.0.0.0',
                       help='Address the seeding BitTorrent session '
                            'listens on. The default, every IPv4 '
                            'address, lets the agents of all compute '
                            'hosts connect; use a specific address to '
                            'seed on one network only (127.0.0.1 for a '
                            'single-host test).'),
    cfg.PortOpt('listen_port',
                default=6881,
                help='TCP port of the seeding session; 0 picks a free '
                     'port (the one chosen is put in meta).'),
    cfg.StrOpt('peer_host',
               sample_default='<listen_host, or this host\'s fully '
                              'qualified name>',
               help='Address or name of this host that agents connect to, '
                    'put in meta as the seed\'s peer address. Unset means '
                    'listen_host when it is a specific address, else this '
                    'host\'s fully qualified name.'),
    cfg.IntOpt('piece_size_mb',
               default=4, min=1,
               help='Piece size of the torrents in MiB, a power of two. '
                    'Larger pieces mean smaller torrents and less '
                    'overhead; smaller ones let peers start trading '
                    'sooner. 4 MiB suits images of hundreds of MB to a '
                    'few GB. A change applies when an artifact is next '
                    'served by a restarted service.'),
    cfg.IntOpt('upload_rate_limit',
               default=0, min=0,
               help='Bytes per second the seed uploads to all agents '
                    'together; 0 means no cap. The web seed (the http '
                    'server) is not limited by it.'),
    cfg.ListOpt('trackers',
                default=[],
                help='Announce URLs of BitTorrent trackers run by the '
                     'operator (e.g. http://tracker.example.org:6969/'
                     'announce of an opentracker), written into every '
                     'torrent. Optional: agents always learn the seed\'s '
                     'address from meta and each other\'s through peer '
                     'exchange.'),
    cfg.BoolOpt('super_seeding',
                default=False,
                help='Seed in super-seeding mode (BEP 16): the seed '
                     'offers each agent pieces nobody has yet, so it sends '
                     'every piece about once (measured on loopback: 1.1 '
                     'copies uploaded to 6 agents against 2.1-2.8 '
                     'without). The first piece reaches an agent only '
                     'after several seconds, so keep the agents\' '
                     '[bittorrent_source] stall_timeout well above 15 s '
                     'when it is on.'),
    cfg.BoolOpt('enable_utp',
                default=False,
                help='Accept and make uTP connections besides TCP. Off by '
                     'default: TCP alone moves data faster on dedicated '
                     'links.'),
]


class BitTorrentServer(base.ImageServer):
    """Seeds compressed images; the ``http`` server is the web seed.

    :param conf: the process's ConfigOpts.
    :raises ConfigurationError: the options contradict each other.
    """

    def __init__(self, conf):
        super().__init__(conf)
        self.piece_size = metainfo.check_piece_size(
            self.options.piece_size_mb)
        self.http = plugin.load_plugin('precache.servers', 'http', conf,
                                       option='[service] server')
        self.seeder = None

    @classmethod
    def get_config_group(cls):
        return GROUP

    @classmethod
    def get_config_opts(cls):
        return bittorrent_server_opts

    def start(self):
        """Start the web server, then the seeding session."""
        self.http.start()
        opts = self.options
        try:
            self.seeder = Seeder(session_mod.Session(
                session_mod.settings(opts.listen_host, opts.listen_port,
                                     opts.enable_utp,
                                     opts.upload_rate_limit),
                name='seed'), super_seeding=opts.super_seeding)
        except BaseException:
            self.http.stop()
            raise

    def stop(self):
        """Stop seeding, then the web server."""
        if self.seeder is not None:
            self.seeder.stop()
            self.seeder = None
        self.http.stop()

    @property
    def peer(self):
        """The seed's ``host:port`` as put in meta."""
        host = self.options.peer_host or self.options.listen_host
        if host in _WILDCARD_HOSTS:
            host = socket.getfqdn()
        return metainfo.format_peer(host, self.seeder.port)

    def serve(self, image, path):
        """Publish the artifact over HTTP and seed its torrent.

        :returns: ``[bittorrent source, http source]``.
        :raises ServeFailed: the artifact or its torrent could not be
            made, or the server is not started.
        """
        if self.seeder is None:
            raise exception.ServeFailed(image_id=image.id,
                                        reason='the bittorrent server is '
                                               'not started')
        http_source, = self.http.serve(image, path)
        artifact = self.http.artifact_path(image)
        try:
            torrent, key = self.seeder.seed(
                image.id, artifact, http_source['hash_value'],
                self.piece_size, http_source['url'], self.options.trackers)
        except Exception as exc:
            raise exception.ServeFailed(
                image_id=image.id,
                reason='seeding %s failed: %s' % (artifact, exc)) from exc
        source = {'method': 'bittorrent',
                  'torrent': metainfo.encode(torrent),
                  'info_hash': key,
                  'peers': [self.peer]}
        for name in ('compression', 'size', 'hash_algo', 'hash_value'):
            source[name] = http_source[name]
        return [source, http_source]


class Seeder(object):
    """The torrents a session seeds, one per image.

    :param session: a :class:`precache.torrent.session.Session`; closed
        by :meth:`stop`.
    :param super_seeding: seed in super-seeding mode (BEP 16).
    """

    def __init__(self, session, super_seeding=False):
        self.session = session
        self.super_seeding = super_seeding
        self._lock = threading.Lock()
        #: image id -> (what the torrent was made of, bytes, info-hash,
        #: handle)
        self._torrents = {}

    @property
    def port(self):
        return self.session.port

    def seed(self, image_id, path, digest, piece_size, web_seed, trackers):
        """Seed the file at ``path`` as image ``image_id``'s torrent.

        The torrent is made once per artifact and kept while it does not
        change; an image's previous torrent stops being seeded.

        :param digest: the artifact's hash: a torrent is made again when
            it changes.

        :returns: ``(bencoded torrent, hex info-hash)``.
        """
        recipe = (path, digest, piece_size, web_seed, tuple(trackers))
        with self._lock:
            current = self._torrents.get(image_id)
            if current is not None and current[0] == recipe:
                return current[1], current[2]
            torrent = metainfo.make_torrent(path, piece_size, [web_seed],
                                            trackers)
            params = metainfo.load(metainfo.encode(torrent))
            params.save_path = path.rsplit('/', 1)[0]
            params.flags |= (lt.torrent_flags.seed_mode |
                             lt.torrent_flags.override_web_seeds)
            params.url_seeds = []  # the seed has the file: no web seed
            handle = self.session.add_torrent(params)
            if self.super_seeding:
                # Set once added: given in the add flags together with
                # seed_mode, libtorrent 2.1 offers peers no piece at all.
                handle.set_flags(lt.torrent_flags.super_seeding)
            key = session_mod.info_hash(params.ti)
            if current is not None and current[2] != key:
                self.session.remove_torrent(current[3])
            self._torrents[image_id] = (recipe, torrent, key, handle)
        LOG.info('Seeding image %s: %s, %d pieces of %d MiB, info-hash %s',
                 image_id, path, params.ti.num_pieces(),
                 piece_size // metainfo.MiB, key)
        return torrent, key

    def handle(self, image_id):
        """Return the torrent handle seeding ``image_id``, or None."""
        with self._lock:
            current = self._torrents.get(image_id)
        return current[3] if current else None

    def stop(self):
        """Stop seeding every torrent and close the session."""
        with self._lock:
            self._torrents.clear()
        self.session.close()
