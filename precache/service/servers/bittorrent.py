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

Extra artifacts (a delta, see :mod:`precache.service.servers.base`) get
the same: the ``http`` server writes and serves the file, and it is
seeded as a torrent of its own, with the same tracker, first copies,
web seed and passkey scheme; it is seeded while its version of the
image is served and forgotten with the image.

How agents find peers, without DHT or a public tracker:

* the service runs its own small tracker (:mod:`precache.torrent.tracker`,
  ``tracker_port``), written first into every torrent: an agent's first
  announce returns the agents already in the swarm, so it connects to
  them at once and the swarm is a mesh within seconds of the cast. The
  tracker also hands out first copies (the source's ``inject_url``):
  each piece is fetched from the origin's web server by one agent, which
  passes it on; the seed does not announce, so those agents trade only
  with each other. Every torrent gets a random passkey, put in the
  announce URL written into the torrent and in the ``inject_url``
  (both in the signed meta); the tracker refuses requests without it.
  The tracker listens on ``tracker_host`` (by default the address agents
  reach this host at, never every address unless configured so) and
  caps what one client address may do (see its options);
* the seed's address (``peer_host``, port of the session) is always in
  the ``bittorrent`` source's ``peers``; agents connect to it when they
  do not take first copies, when fetching them fails or stalls, or when
  the tracker cannot be reached;
* peer exchange (``ut_pex``, on in every precache session) passes
  addresses on as well, once a minute;
* ``trackers`` optionally names trackers run by the operator (e.g.
  Debian's ``opentracker``), written into the torrent after the built-in
  one; agents announce to every tracker of a torrent.

DHT, local service discovery, UPnP and NAT-PMP are always off; uTP is off
unless ``enable_utp`` is set.
"""

import socket

from oslo_config import cfg

from precache.common import exception
from precache.common import plugin
from precache.common import webserver
from precache.service.servers import artifacts
from precache.service.servers import base
from precache.service.servers import seeding
from precache.torrent import metainfo
from precache.torrent import registry
from precache.torrent import session as session_mod
from precache.torrent import tracker as tracker_mod

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
    cfg.IntOpt('piece_size_kb',
               default=1024, min=16,
               help='Piece size of the torrents in KiB, a power of two of '
                    '16 or more. An agent passes a piece on to other '
                    'agents only once it has all of it, and each piece '
                    'comes from one or a few connections, each with a '
                    'share of a link: smaller pieces move through the '
                    'swarm sooner, larger ones make smaller torrents '
                    '(20 bytes per piece in meta). 1 MiB suits images of '
                    'up to a few GB (a 4 GB artifact: 80 KB of hashes); '
                    'use 64 to 256 KiB for a swarm of slow links (tens '
                    'of Mbit/s), 4 MiB for '
                    'artifacts of tens of GB. A change applies when an '
                    'artifact is next served by a restarted service.'),
    cfg.IntOpt('upload_rate_limit',
               default=0, min=0,
               help='Bytes per second the seed uploads to all agents '
                    'together; 0 means no cap. The web seed (the http '
                    'server) is not limited by it.'),
    cfg.BoolOpt('tracker',
                default=True,
                help='Run the built-in BitTorrent tracker, listed first in '
                     'every torrent, so that agents learn of each other '
                     'with their first announce. Without it (and without '
                     'operator trackers) agents know the seed and learn '
                     'of each other through peer exchange only, about '
                     'once a minute.'),
    cfg.HostAddressOpt('tracker_host',
                       sample_default='<listen_host, or the address '
                                      'peer_host resolves to>',
                       help='Address the built-in tracker listens on. '
                            'Unset means listen_host when it is a '
                            'specific address, else the address peer_host '
                            '(or this host\'s fully qualified name) '
                            'resolves to: the one agents announce to. Set '
                            '0.0.0.0 or :: only to accept announces on '
                            'every address.'),
    cfg.PortOpt('tracker_port',
                default=6969,
                help='TCP port of the built-in tracker, on tracker_host; 0 '
                     'picks a free port.'),
    cfg.IntOpt('tracker_peers_per_address',
               default=registry.PEERS_PER_ADDRESS, min=1,
               help='Peers one client address may have in a swarm of the '
                    'built-in tracker (a peer is the address an announce '
                    'came from with the port it announced); a further one '
                    'replaces that address\'s least recent peer. One agent '
                    'per compute host needs 1; raise it when several '
                    'agents share an address (NAT, tests).'),
    cfg.IntOpt('tracker_leases_per_address',
               default=registry.LEASES_PER_ADDRESS, min=1,
               help='First copies one client address may hold unconfirmed '
                    'at once. An agent holds one at a time; raise it when '
                    'several agents share an address.'),
    cfg.IntOpt('tracker_connections_per_address',
               default=webserver.MAX_CONNECTIONS_PER_ADDRESS, min=1,
               help='Connections one client address may hold open to the '
                    'built-in tracker at once; further ones are closed at '
                    'once.'),
    cfg.FloatOpt('tracker_head_timeout',
                 default=webserver.HEAD_TIMEOUT, min=0.1,
                 help='Seconds a client of the built-in tracker has to send '
                      'a request line and its headers, in all; slower '
                      'clients (and idle connections) are closed.'),
    cfg.IntOpt('announce_interval',
               default=60, min=5,
               help='Seconds between two announces the built-in tracker '
                    'asks of each agent; an agent that did not announce '
                    'for three intervals is no longer handed out.'),
    cfg.IntOpt('upload_slots',
               default=4, min=-1,
               help='Agents the seed uploads to at the same time (they '
                    'take turns, every second). Few slots make the seed '
                    'send pieces nobody has yet, which the agents then '
                    'pass on to each other; -1 uploads to every agent at '
                    'once, which sends the same pieces several times.'),
    cfg.IntOpt('first_copy_streams',
               default=registry.FIRST_COPY_STREAMS, min=1,
               help='Pieces the built-in tracker lets agents fetch from the '
                    'origin\'s web server at the same time (first copies, '
                    'each handed to one agent, which passes it on). It '
                    'bounds the fetches the origin serves at once; too few '
                    'leave its uplink idle, as each fetch shares its '
                    'agent\'s downlink with the swarm\'s connections.'),
    cfg.ListOpt('trackers',
                default=[],
                help='Announce URLs of BitTorrent trackers run by the '
                     'operator (e.g. http://tracker.example.org:6969/'
                     'announce of an opentracker), written into every '
                     'torrent after the built-in tracker. Optional: '
                     'agents always learn the seed\'s address from meta.'),
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

    carries_extra_artifacts = True

    def __init__(self, conf):
        super().__init__(conf)
        self.piece_size = metainfo.check_piece_size(
            self.options.piece_size_kb)
        self.http = plugin.load_plugin('precache.servers', 'http', conf,
                                       option='[service] server')
        self.seeder = None
        self.tracker = None

    @classmethod
    def get_config_group(cls):
        return GROUP

    @classmethod
    def get_config_opts(cls):
        return bittorrent_server_opts

    def start(self):
        """Start the web server, the tracker, then the seeding session."""
        self.http.start()
        opts = self.options
        try:
            if opts.tracker:
                self.tracker = self._make_tracker(opts, self._tracker_host())
                self.tracker.start()
            self.seeder = seeding.Seeder(session_mod.Session(
                session_mod.settings(opts.listen_host, opts.listen_port,
                                     opts.enable_utp,
                                     opts.upload_rate_limit,
                                     upload_slots=opts.upload_slots),
                name='seed'),
                swarms=self.tracker.swarms if self.tracker else None,
                announce_url=(self.tracker_url(tracker_mod.ANNOUNCE_PATH)
                              if self.tracker else None))
        except BaseException:
            self._stop_tracker()
            self.http.stop()
            raise

    def stop(self):
        """Stop seeding, the tracker, then the web server."""
        if self.seeder is not None:
            self.seeder.stop()
            self.seeder = None
        self._stop_tracker()
        self.http.stop()

    def _tracker_host(self):
        """The address the built-in tracker binds (see tracker_host).

        :raises ConfigurationError: unset, and this host's name does not
            resolve.
        """
        opts = self.options
        if opts.tracker_host:
            return opts.tracker_host
        if opts.listen_host not in _WILDCARD_HOSTS:
            return opts.listen_host
        try:
            return socket.getaddrinfo(self.host, None,
                                      type=socket.SOCK_STREAM)[0][4][0]
        except (OSError, IndexError) as exc:
            raise exception.ConfigurationError(
                reason='the built-in tracker needs an address to listen on '
                       'and %s does not resolve (%s); set [%s] tracker_host'
                       % (self.host, exc, GROUP))

    @staticmethod
    def _make_tracker(opts, host):
        address = (host, opts.tracker_port)
        try:
            return tracker_mod.Tracker(
                address, opts.announce_interval, opts.first_copy_streams,
                peers_per_address=opts.tracker_peers_per_address,
                leases_per_address=opts.tracker_leases_per_address,
                head_timeout=opts.tracker_head_timeout,
                max_per_address=opts.tracker_connections_per_address)
        except OSError as exc:
            raise exception.ConfigurationError(
                reason='the built-in tracker cannot listen on %s port %d '
                       '(%s); check [%s] tracker_host and tracker_port, or '
                       'set tracker = false' % (address + (exc, GROUP)))

    def _stop_tracker(self):
        if self.tracker is not None:
            self.tracker.stop()
            self.tracker = None

    @property
    def host(self):
        """This host's address or name, as agents reach it."""
        host = self.options.peer_host or self.options.listen_host
        if host in _WILDCARD_HOSTS:
            host = socket.getfqdn()
        return host

    @property
    def peer(self):
        """The seed's ``host:port`` as put in meta."""
        return metainfo.format_peer(self.host, self.seeder.port)

    def tracker_url(self, path):
        """Return the built-in tracker's URL of ``path``."""
        return 'http://%s%s' % (
            metainfo.format_peer(self.host, self.tracker.port), path)

    def serve(self, image, path):
        """Publish the artifact over HTTP and seed its torrent.

        Torrents of the image's extra artifacts of older versions stop
        being seeded.

        :returns: ``[bittorrent source, http source]``.
        :raises ServeFailed: the artifact or its torrent could not be
            made, or the server is not started.
        """
        self._check_started(image)
        http_source, = self.http.serve(image, path)
        artifact = self.http.artifact_path(image)
        source = self._seed(image, artifact, http_source)
        self.seeder.forget(image.id, keep=self._current(image))
        return [source, http_source]

    def extra_artifact_path(self, image, name):
        """Where the ``http`` server keeps it (see there)."""
        return self.http.extra_artifact_path(image, name)

    def serve_extra(self, image, artifact):
        """Serve an extra artifact over HTTP and seed its own torrent.

        :returns: ``[bittorrent source, http source]``.
        :raises ServeFailed: its torrent could not be made, or the server
            is not started.
        """
        self._check_started(image)
        http_source, = self.http.serve_extra(image, artifact)
        return [self._seed(image, artifact.path, http_source,
                           artifact.name), http_source]

    def _check_started(self, image):
        if self.seeder is None:
            raise exception.ServeFailed(image_id=image.id,
                                        reason='the bittorrent server is '
                                               'not started')

    def _current(self, image):
        """Whether a seeded artifact belongs to the served version."""
        prefix = artifacts.Artifact(
            self.http.options.document_root, image,
            self.http.options.compression).version_prefix
        return lambda name: name is None or name.startswith(prefix)

    def _seed(self, image, path, http_source, name=None):
        """Seed the file at ``path``; return its ``bittorrent`` source."""
        try:
            torrent, key, passkey = self.seeder.seed(
                image.id, path, http_source['hash_value'],
                self.piece_size, http_source['url'], self.options.trackers,
                artifact=name)
        except Exception as exc:
            raise exception.ServeFailed(
                image_id=image.id,
                reason='seeding %s failed: %s' % (path, exc)) from exc
        source = {'method': 'bittorrent',
                  'torrent': metainfo.encode(torrent),
                  'info_hash': key,
                  'peers': [self.peer]}
        if self.tracker is not None:
            source['inject_url'] = seeding.with_passkey(
                self.tracker_url(tracker_mod.INJECT_PATH), passkey)
        for field in ('compression', 'size', 'hash_algo', 'hash_value'):
            source[field] = http_source[field]
        return source

    def retire(self, image_id):
        """Stop seeding the image's torrent, then remove its artifacts."""
        if self.seeder is not None:
            self.seeder.forget(image_id)
        self.http.retire(image_id)
