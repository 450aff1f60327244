"""A peer the tracker names that fails to connect at first is tried again.

Real libtorrent sessions and the real tracker on 127.0.0.1: the tracker
names a peer whose port refuses connections for the first seconds (a
host restarting, or a link whose queue holds the handshake past its
timeout), then a seed listens there. The download must connect to it
and complete long before its stall timeout; with libtorrent's Internet
defaults the peer is tried again only after two minutes, and the
download stalls.
"""

import os
import socket
import threading

import fixtures
import libtorrent as lt

from precache.tests import base
from precache.torrent import metainfo
from precache.torrent import session as session_mod
from precache.torrent import swarm
from precache.torrent import tracker as tracker_mod

MiB = 1024 * 1024
#: Seconds the named peer refuses connections before its seed listens.
REFUSING_FOR = 3
#: The download's stall timeout: far below libtorrent's default retry.
STALL_TIMEOUT = 40


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class ReconnectTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tempdir = self.useFixture(fixtures.TempDir()).path
        self.tracker = tracker_mod.Tracker(('127.0.0.1', 0), 5)
        self.tracker.start()
        self.addCleanup(self.tracker.stop)
        seed_dir = os.path.join(self.tempdir, 'seed')
        os.mkdir(seed_dir)
        self.path = os.path.join(seed_dir, 'artifact')
        with open(self.path, 'wb') as f:
            f.write(os.urandom(4 * MiB))
        announce = 'http://127.0.0.1:%d%s' % (self.tracker.port,
                                              tracker_mod.ANNOUNCE_PATH)
        self.torrent = metainfo.make_torrent(self.path, 256 * 1024,
                                             trackers=[announce])
        params = metainfo.load(metainfo.encode(self.torrent))
        self.key = session_mod.info_hash(params.ti)
        self.tracker.swarms.track(self.key)

    def start_seed_later(self, port):
        """Seed the artifact on ``port`` after :data:`REFUSING_FOR` s.

        The seed never announces: the download only knows its port from
        the tracker's answer given while it refused connections.
        """
        sessions = []
        ready = threading.Event()

        def seed():
            ready.wait(REFUSING_FOR)
            session = session_mod.Session(
                session_mod.settings('127.0.0.1', port), name='seed')
            sessions.append(session)
            params = metainfo.load(metainfo.encode(self.torrent))
            params.trackers = []
            params.save_path = os.path.dirname(self.path)
            params.flags |= lt.torrent_flags.seed_mode
            session.add_torrent(params)

        thread = threading.Thread(target=seed, daemon=True)
        thread.start()

        def stop():
            ready.set()
            thread.join()
            for session in sessions:
                session.close()
        self.addCleanup(stop)

    def test_a_refusing_peer_is_connected_once_it_listens(self):
        port = free_port()
        # The tracker names the peer, as if it had announced and then
        # restarted.
        self.tracker.swarms.announce(bytes.fromhex(self.key), b'-SEED-' * 3
                                     + b'xx', '127.0.0.1', port, 0,
                                     'started', 50)
        self.start_seed_later(port)
        session = session_mod.Session(session_mod.settings('127.0.0.1', 0),
                                      name='agent')
        self.addCleanup(session.close)
        params = metainfo.load(metainfo.encode(self.torrent))
        progress = []
        download = swarm.SwarmDownload(
            session, params, os.path.join(self.tempdir, 'agent'), [],
            STALL_TIMEOUT, -1, 0, progress=progress.append)
        try:
            received = b''.join(download.pieces())
        finally:
            download.detach()
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), received)
        # What arrived was reported as it arrived (every half second),
        # and the last report is the whole however fast it came.
        self.assertEqual(sorted(progress), progress)
        self.assertEqual(0, progress[0])
        self.assertEqual(len(received), progress[-1])
