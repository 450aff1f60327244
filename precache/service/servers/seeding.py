"""Seeding the ``bittorrent`` server's torrents: one per artifact.

:class:`Seeder` makes each artifact's v1 torrent (with a random passkey
in the built-in tracker's announce URL), seeds it in seed mode from the
service's libtorrent session and tells the tracker which torrents are
seeded; :func:`with_passkey` puts a passkey in a tracker URL.
"""

import secrets
import threading
import urllib.parse

import libtorrent as lt
from oslo_log import log as logging

from precache.torrent import metainfo
from precache.torrent import session as session_mod

LOG = logging.getLogger(__name__)


def with_passkey(url, passkey):
    """Return ``url`` with ``passkey=...`` in its query string."""
    return '%s?%s' % (url, urllib.parse.urlencode({'passkey': passkey}))


class Seeder(object):
    """The torrents a session seeds: one per image and artifact.

    An image's full artifact and each of its extra artifacts (named by
    their file names) have a torrent each.

    :param session: a :class:`precache.torrent.session.Session`; closed
        by :meth:`stop`.
    :param swarms: the built-in tracker's
        :class:`~precache.torrent.registry.Swarms`, told which torrents are
        seeded and their passkeys; None without it.
    :param announce_url: the built-in tracker's announce URL, written
        first into every torrent with the torrent's passkey.
    """

    def __init__(self, session, swarms=None, announce_url=None):
        self.session = session
        self.swarms = swarms
        self.announce_url = announce_url
        self._lock = threading.Lock()
        #: (image id, artifact name or None) -> (what the torrent was made
        #: of, bytes, info-hash, handle, passkey)
        self._torrents = {}

    @property
    def port(self):
        return self.session.port

    def seed(self, image_id, path, digest, piece_size, web_seed, trackers,
             artifact=None):
        """Seed the file at ``path`` as a torrent of image ``image_id``.

        The torrent is made once per artifact and kept while it does not
        change; the previous torrent of the same artifact stops being
        seeded.

        :param digest: the artifact's hash: a torrent is made again when
            it changes.
        :param trackers: the operator's announce URLs, written after the
            built-in tracker's.
        :param artifact: the name of an extra artifact; None for the full
            one.

        :returns: ``(bencoded torrent, hex info-hash, passkey)``; the
            passkey is None without the built-in tracker.
        """
        recipe = (path, digest, piece_size, web_seed, tuple(trackers))
        slot = (image_id, artifact)
        with self._lock:
            current = self._torrents.get(slot)
            if current is not None and current[0] == recipe:
                return current[1], current[2], current[4]
            passkey = None
            trackers = list(trackers)
            if self.announce_url is not None:
                passkey = secrets.token_urlsafe(24)
                trackers.insert(0, with_passkey(self.announce_url, passkey))
            torrent = metainfo.make_torrent(path, piece_size, [web_seed],
                                            trackers)
            params = metainfo.load(metainfo.encode(torrent))
            params.save_path = path.rsplit('/', 1)[0]
            params.flags |= (lt.torrent_flags.seed_mode |
                             lt.torrent_flags.override_web_seeds)
            params.url_seeds = []  # the seed has the file: no web seed
            if self.swarms is not None:
                # Agents learn of the seed from the source's peers; the
                # built-in tracker lists agents only, which take first
                # copies from the origin and trade them among themselves.
                params.trackers = []
            handle = self.session.add_torrent(params)
            key = session_mod.info_hash(params.ti)
            if self.swarms is not None:
                self.swarms.track(key, params.ti.num_pieces(), passkey)
            if current is not None and current[2] != key:
                self.session.remove_torrent(current[3])
                if self.swarms is not None:
                    self.swarms.untrack(current[2])
            self._torrents[slot] = (recipe, torrent, key, handle, passkey)
        LOG.info('Seeding image %s: %s, %d pieces of %d KiB, info-hash %s',
                 image_id, path, params.ti.num_pieces(),
                 piece_size // metainfo.KiB, key)
        return torrent, key, passkey

    def forget(self, image_id, keep=None):
        """Stop seeding ``image_id``'s torrents; the tracker forgets them.

        :param keep: called with each torrent's artifact name (None for
            the full artifact): those for which it returns True are kept.
            None forgets every torrent of the image.
        """
        with self._lock:
            slots = [slot for slot in self._torrents if slot[0] == image_id
                     and not (keep is not None and keep(slot[1]))]
            gone = [self._torrents.pop(slot) for slot in slots]
            for current in gone:
                self.session.remove_torrent(current[3])
                if self.swarms is not None:
                    self.swarms.untrack(current[2])
        for current in gone:
            LOG.info('Stopped seeding a torrent of image %s (info-hash %s)',
                     image_id, current[2])

    def handle(self, image_id, artifact=None):
        """Return the handle seeding an artifact of ``image_id``, or None.

        :param artifact: the name of an extra artifact; None for the full
            one.
        """
        with self._lock:
            current = self._torrents.get((image_id, artifact))
        return current[3] if current else None

    def stop(self):
        """Stop seeding every torrent and close the session."""
        with self._lock:
            self._torrents.clear()
        self.session.close()
