"""Seeding downloaded torrents for a while, then removing their data.

An agent that finished a torrent keeps seeding it so the hosts still
downloading get pieces from it rather than from the service. A
:class:`SeedingPool` thread checks the seeding torrents every second and
removes each one, with its files, after ``seed_time`` seconds or once it
uploaded ``seed_ratio`` times its size, whichever comes first. The image
itself has landed by then: seeding uses the torrent's own copy of the
compressed artifact.
"""

import collections
import shutil
import threading
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Seconds between two checks of the seeding torrents.
CHECK_INTERVAL = 1.0

Seed = collections.namedtuple('Seed', 'handle directory size started')


class SeedingPool(object):
    """Torrents seeded after their download, each for a limited time.

    :param session: the :class:`~precache.torrent.session.Session`.
    :param seed_time: seconds to seed each torrent; 0 removes it at once.
    :param seed_ratio: uploaded bytes / size after which a torrent is
        removed before ``seed_time``; 0 means no such limit.
    """

    def __init__(self, session, seed_time, seed_ratio):
        self.session = session
        self.seed_time = seed_time
        self.seed_ratio = seed_ratio
        self._lock = threading.Lock()
        self._seeds = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run,
                                        name='precache-seeding', daemon=True)
        self._thread.start()

    def add(self, key, handle, directory, size):
        """Seed torrent ``key`` whose file is in ``directory``."""
        seed = Seed(handle, directory, size, time.monotonic())
        with self._lock:
            self._seeds[key] = seed
        LOG.info('Seeding torrent %s for up to %d s or ratio %s', key,
                 self.seed_time, self.seed_ratio or 'unlimited')
        self._check()

    def take(self, key):
        """Stop managing torrent ``key``; return its :class:`Seed` or None.

        For a new download of a torrent still seeding: it reads from it.
        """
        with self._lock:
            return self._seeds.pop(key, None)

    def keys(self):
        with self._lock:
            return list(self._seeds)

    def close(self):
        """Stop the thread; remove every seeding torrent and its data."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            seeds, self._seeds = self._seeds, {}
        for key, seed in seeds.items():
            self._remove(key, seed, 'the agent stops')

    def _run(self):
        while not self._stop.wait(CHECK_INTERVAL):
            try:
                self._check()
            except Exception:
                LOG.exception('Checking the seeding torrents failed')

    def _check(self):
        now = time.monotonic()
        with self._lock:
            seeds = list(self._seeds.items())
        for key, seed in seeds:
            reason = self._done(seed, now)
            if reason is None:
                continue
            with self._lock:
                if self._seeds.get(key) is not seed:
                    continue  # taken meanwhile
                del self._seeds[key]
            self._remove(key, seed, reason)

    def _done(self, seed, now):
        """Return why seeding ``seed`` is over, or None."""
        elapsed = now - seed.started
        if elapsed >= self.seed_time:
            return 'seeded for %.0f s' % elapsed
        if self.seed_ratio > 0 and seed.size:
            ratio = seed.handle.status().total_payload_upload / seed.size
            if ratio >= self.seed_ratio:
                return 'reached ratio %.2f' % ratio
        return None

    def _remove(self, key, seed, reason):
        uploaded = 0
        try:
            uploaded = seed.handle.status().total_payload_upload
            self.session.remove_torrent(seed.handle, delete_files=True)
        except Exception as exc:
            LOG.warning('Removing torrent %s failed: %s', key, exc)
        shutil.rmtree(seed.directory, ignore_errors=True)
        LOG.info('Stopped seeding torrent %s (%s), %d bytes uploaded; '
                 'removed %s', key, reason, uploaded, seed.directory)
