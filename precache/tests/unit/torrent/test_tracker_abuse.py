"""The built-in tracker against clients that do not play along.

Whoever reaches the tracker's port may send anything: floods of peers,
``stopped`` for others, requests for every first copy, confirmations of
pieces it never fetched, connections that never finish their request.
"""

import socket
import time
import urllib.parse
import urllib.request

import libtorrent as lt

from precache.tests import base
from precache.torrent import registry
from precache.torrent import tracker

HASH = bytes(range(20))
PASSKEY = 'c2VjcmV0LXBhc3NrZXktb2YtdGhlLXRvcnJlbnQ'
ATTACKER = '203.0.113.66'


def peer_id(n):
    return b'-PC0001-' + b'%012d' % n


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class SwarmAbuseTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.swarms = registry.Swarms(60, clock=self.clock,
                                      peers_per_address=3,
                                      leases_per_address=2)
        self.swarms.track(HASH.hex(), num_pieces=10, passkey=PASSKEY)

    def announce(self, address, port=6881, pid=1, event='', numwant=50):
        return self.swarms.announce(HASH, peer_id(pid), address, port, 100,
                                    event, numwant)

    def agents(self):
        return ['198.18.2.%d' % n for n in range(1, 4)]

    def test_a_flood_from_one_address_is_capped(self):
        for address in self.agents():
            self.announce(address)
        for n in range(2000):
            self.clock.now += 0.001
            self.announce(ATTACKER, port=10000 + n, pid=n)
        peers = self.swarms.peers(HASH.hex())
        self.assertEqual(3, sum(1 for a, _ in peers if a == ATTACKER))
        # The flooder's latest ports are kept, its earlier ones replaced.
        self.assertIn((ATTACKER, 11999), peers)
        # A newcomer still gets every real agent.
        found, _, total = self.announce('198.18.2.9')
        self.assertEqual(7, total)
        self.assertLessEqual(set(self.agents()),
                             {p.address for p in found})

    def test_stopped_with_another_peers_id_removes_nothing(self):
        self.announce('198.18.2.1', pid=1)
        # Same claimed id, same port, another address.
        self.announce(ATTACKER, pid=1, event='stopped')
        self.assertEqual([('198.18.2.1', 6881)],
                         list(self.swarms.peers(HASH.hex())))
        # Its own entry, it can remove.
        self.announce(ATTACKER, port=7000, pid=5)
        self.announce(ATTACKER, port=7000, pid=6, event='stopped')
        self.assertEqual([('198.18.2.1', 6881)],
                         list(self.swarms.peers(HASH.hex())))

    def test_a_peer_is_its_address_and_port_not_its_id(self):
        self.announce('198.18.2.1', pid=1)
        self.announce('198.18.2.1', pid=2)
        self.assertEqual(1, len(self.swarms.peers(HASH.hex())))

    def test_no_first_copy_without_an_announce(self):
        self.announce('198.18.2.1')
        error = self.assertRaises(registry.AnnounceError,
                                  self.swarms.take_first_copy, HASH,
                                  holder=ATTACKER)
        self.assertIn('announce torrent %s first' % HASH.hex(), str(error))
        # Nothing was handed out: the agent gets piece 0.
        self.assertEqual(0, self.swarms.take_first_copy(
            HASH, holder='198.18.2.1'))

    def test_an_address_holds_at_most_its_cap_of_first_copies(self):
        self.announce(ATTACKER)
        self.announce('198.18.2.1')
        self.assertEqual([0, 1], [
            self.swarms.take_first_copy(HASH, holder=ATTACKER)
            for _ in range(2)])
        self.assertEqual(registry.FirstCopies.WAIT,
                         self.swarms.take_first_copy(HASH, holder=ATTACKER))
        # Others are not held up by it.
        self.assertEqual(2, self.swarms.take_first_copy(
            HASH, holder='198.18.2.1'))

    def test_only_the_holder_confirms_a_first_copy(self):
        self.announce(ATTACKER)
        self.announce('198.18.2.1')
        self.assertEqual(0, self.swarms.take_first_copy(
            HASH, holder='198.18.2.1'))
        # The attacker "confirms" every piece, taken or not.
        self.swarms.confirm_first_copies(HASH, range(10), holder=ATTACKER)
        self.assertFalse(self.swarms.first_copies_done(HASH))
        # Piece 0 is still the agent's; the rest still go out in order.
        self.assertEqual(1, self.swarms.take_first_copy(
            HASH, confirmed=range(10), holder=ATTACKER))
        self.assertEqual(2, self.swarms.take_first_copy(
            HASH, confirmed=[0], holder='198.18.2.1'))

    def test_passkeys(self):
        self.swarms.authorize(HASH, PASSKEY)
        for wrong, reason in (('', 'missing passkey'),
                              (PASSKEY[:-1], 'wrong passkey'),
                              (PASSKEY + 'x', 'wrong passkey')):
            error = self.assertRaises(registry.AnnounceError,
                                      self.swarms.authorize, HASH, wrong)
            self.assertIn(reason, str(error))


class TrackerAbuseTest(base.TestCase):
    """Over HTTP on 127.0.0.1."""

    def setUp(self):
        super().setUp()
        self.tracker = tracker.Tracker(('127.0.0.1', 0), 30,
                                       head_timeout=0.5, max_per_address=3)
        self.tracker.start()
        self.addCleanup(self.tracker.stop)
        self.tracker.swarms.track(HASH.hex(), num_pieces=2, passkey=PASSKEY)

    def fetch(self, path, **fields):
        url = 'http://127.0.0.1:%d%s?%s' % (
            self.tracker.port, path, urllib.parse.urlencode(fields))
        with urllib.request.urlopen(url, timeout=10) as response:
            return lt.bdecode(response.read())

    def announce(self, **fields):
        values = dict(info_hash=HASH, peer_id=peer_id(1), port='6881',
                      left='10', passkey=PASSKEY)
        values.update(fields)
        return self.fetch(tracker.ANNOUNCE_PATH, **values)

    def inject(self, **fields):
        values = dict(info_hash=HASH.hex(), passkey=PASSKEY)
        values.update(fields)
        return self.fetch(tracker.INJECT_PATH, **values)

    def test_announces_without_the_passkey_are_refused(self):
        answer = self.announce(passkey='')
        self.assertIn(b'missing passkey', answer[b'failure reason'])
        answer = self.announce(passkey='guess')
        self.assertEqual(b'wrong passkey for torrent %s' % HASH.hex().encode(),
                         answer[b'failure reason'])
        self.assertEqual({}, self.tracker.swarms.peers(HASH.hex()))
        self.assertIn(b'peers', self.announce())

    def test_first_copies_without_the_passkey_are_refused(self):
        self.announce()
        self.assertIn(b'wrong passkey',
                      self.inject(passkey='guess')[b'failure reason'])
        self.assertIn(b'wrong passkey', self.inject(
            passkey='guess', take='0', done='0')[b'failure reason'])
        self.assertEqual({b'piece': 0}, self.inject())

    def test_no_first_copy_before_an_announce(self):
        answer = self.inject()
        self.assertIn(b'announce torrent', answer[b'failure reason'])

    def connect(self):
        sock = socket.create_connection(('127.0.0.1', self.tracker.port),
                                        timeout=10)
        self.addCleanup(sock.close)
        return sock

    def test_a_half_sent_request_is_closed_after_the_deadline(self):
        sock = self.connect()
        sock.sendall(b'GET /announce?info_hash=')
        started = time.monotonic()
        self.assertEqual(b'', sock.recv(100))
        self.assertLess(time.monotonic() - started, 3.0)

    def test_a_trickled_request_is_closed_after_the_deadline(self):
        sock = self.connect()
        started = time.monotonic()
        with self.assertRaises(OSError):
            for _ in range(100):  # 5 s at most
                sock.sendall(b'G')
                time.sleep(0.05)
            self.fail('the tracker waited for a trickling client')
        self.assertLess(time.monotonic() - started, 3.0)

    def test_connections_per_address_are_capped(self):
        idle = [self.connect() for _ in range(3)]
        deadline = time.monotonic() + 5
        while self.tracker.connections('127.0.0.1') < 3:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        extra = self.connect()
        extra.sendall(b'GET /announce HTTP/1.0\r\n\r\n')
        self.assertEqual(b'', extra.recv(100))
        for sock in idle:
            sock.close()
        while self.tracker.connections('127.0.0.1'):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        self.assertIn(b'peers', self.announce())
