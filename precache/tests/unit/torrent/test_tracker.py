"""Tests of the built-in BitTorrent tracker, over real HTTP on 127.0.0.1."""

import struct
import threading
import time
import urllib.parse
import urllib.request

import fixtures
import libtorrent as lt

from precache.tests import base
from precache.torrent import registry
from precache.torrent import tracker

HASH = bytes(range(20))
OTHER_HASH = bytes(range(1, 21))
PASSKEY = 'Zm9vYmFyLXNlY3JldC0xMjM0NTY3OA'


def peer_id(n):
    return b'-PC0001-' + b'%012d' % n


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class SwarmsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.swarms = registry.Swarms(60, clock=self.clock)
        self.swarms.track(HASH.hex())

    def announce(self, n, left=100, event='', numwant=50, address=None):
        return self.swarms.announce(HASH, peer_id(n),
                                    address or '198.18.2.%d' % n, 6881,
                                    left, event, numwant)

    def test_later_peers_get_the_earlier_ones(self):
        self.assertEqual(([], 0, 1), self.announce(1))
        peers, complete, total = self.announce(2)
        self.assertEqual(['198.18.2.1'], [p.address for p in peers])
        self.assertEqual((0, 2), (complete, total))
        peers, _, _ = self.announce(3)
        self.assertEqual({'198.18.2.1', '198.18.2.2'},
                         {p.address for p in peers})

    def test_peers_still_downloading_come_first(self):
        self.announce(1, left=0)
        self.announce(2, left=5)
        self.announce(3, left=0)
        peers, complete, total = self.announce(4)
        self.assertEqual('198.18.2.2', peers[0].address)
        self.assertEqual((2, 4), (complete, total))

    def test_numwant_caps_the_answer(self):
        for n in range(1, 11):
            self.announce(n)
        peers, _, total = self.announce(11, numwant=3)
        self.assertEqual(3, len(peers))
        self.assertEqual(11, total)

    def test_stopped_removes_the_peer(self):
        self.announce(1)
        self.announce(1, event='stopped')
        self.assertEqual({}, self.swarms.peers(HASH.hex()))

    def test_silent_peers_expire_after_three_intervals(self):
        self.announce(1)
        self.clock.now += 3 * 60 - 1
        self.announce(2)
        self.assertEqual(2, len(self.swarms.peers(HASH.hex())))
        self.clock.now += 2
        self.assertEqual([('198.18.2.2', 6881)],
                         list(self.swarms.peers(HASH.hex())))

    def test_untracked_hash_is_refused(self):
        self.assertRaises(KeyError, self.swarms.announce, OTHER_HASH,
                          peer_id(1), '198.18.2.1', 6881, 0, '', 50)
        self.swarms.untrack(HASH.hex())
        self.assertRaises(KeyError, self.announce, 1)
        self.assertEqual([], self.swarms.tracked())

    def test_compact_forms(self):
        peers = [registry.Peer('198.18.2.7', 6881, 0, 0),
                 registry.Peer('fd00::1', 51413, 0, 0)]
        v4, v6 = tracker.compact(peers)
        self.assertEqual(bytes([198, 18, 2, 7]) + struct.pack('!H', 6881),
                         v4)
        self.assertEqual(18, len(v6))
        self.assertEqual(struct.pack('!H', 51413), v6[16:])


class ParseAnnounceTest(base.TestCase):

    def query(self, **fields):
        values = {'info_hash': HASH, 'peer_id': peer_id(1), 'port': '6881',
                  'left': '10', 'compact': '1'}
        values.update(fields)
        return urllib.parse.urlencode(
            {k: v for k, v in values.items() if v is not None})

    def test_parses_binary_fields(self):
        self.assertEqual((HASH, peer_id(1), 6881, 10, 'started', 20),
                         tracker.parse_announce(self.query(
                             event='started', numwant='20')))

    def test_numwant_defaults_and_is_capped(self):
        self.assertEqual(tracker.DEFAULT_NUMWANT,
                         tracker.parse_announce(self.query())[5])
        self.assertEqual(tracker.MAX_NUMWANT, tracker.parse_announce(
            self.query(numwant='100000'))[5])

    def test_malformed_announces(self):
        for fields, message in (
                ({'info_hash': None}, 'missing info_hash'),
                ({'info_hash': b'short'}, 'must be 20 bytes'),
                ({'port': 'x'}, 'malformed number'),
                ({'port': '0'}, 'bad port 0'),
                ({'event': 'exploded'}, "unknown event 'exploded'")):
            exc = self.assertRaises(registry.AnnounceError,
                                    tracker.parse_announce,
                                    self.query(**fields))
            self.assertIn(message, str(exc))


class FirstCopiesTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.copies = registry.FirstCopies(3, lease=30, clock=self.clock)

    def test_pieces_are_handed_out_once_in_order(self):
        self.assertEqual([0, 1, 2], [self.copies.take() for _ in range(3)])
        # All handed out, none confirmed, the lease runs: wait.
        self.assertEqual(registry.FirstCopies.WAIT, self.copies.take())
        self.assertEqual(registry.FirstCopies.DONE,
                         self.copies.take(confirmed=[0, 1, 2]))

    def test_an_unconfirmed_piece_is_handed_out_again_after_its_lease(self):
        self.copies.take()
        self.copies.take()
        self.copies.take(confirmed=[0])
        self.clock.now += 29
        self.assertEqual(registry.FirstCopies.WAIT,
                         self.copies.take(confirmed=[2]))
        self.clock.now += 1
        # Piece 1's agent never confirmed it: another agent gets it.
        self.assertEqual(1, self.copies.take())
        self.assertEqual(registry.FirstCopies.DONE,
                         self.copies.take(confirmed=[1]))

    def test_at_most_streams_pieces_are_out_at_once(self):
        copies = registry.FirstCopies(3, streams=2, clock=self.clock)
        self.assertEqual([0, 1], [copies.take(), copies.take()])
        self.assertEqual(registry.FirstCopies.WAIT, copies.take())
        self.assertEqual(2, copies.take(confirmed=[0]))

    def test_a_waiting_request_is_answered_on_a_confirmation(self):
        swarms = registry.Swarms(60, first_copy_streams=1)
        swarms.track(HASH.hex(), num_pieces=2)
        self.assertEqual(0, swarms.take_first_copy(HASH))
        self.assertEqual(registry.FirstCopies.WAIT,
                         swarms.take_first_copy(HASH, wait=0.1))
        answers = []
        waiter = threading.Thread(target=lambda: answers.append(
            (swarms.take_first_copy(HASH, wait=30), time.monotonic())))
        waiter.start()
        time.sleep(0.2)
        self.assertEqual(1, swarms.take_first_copy(HASH, confirmed=[0]))
        self.assertEqual([], answers)  # piece 1 is out: it still waits
        confirmed_at = time.monotonic()
        self.assertEqual(registry.FirstCopies.DONE,
                         swarms.take_first_copy(HASH, confirmed=[1]))
        waiter.join(30)
        (answer, answered_at), = answers
        self.assertEqual(registry.FirstCopies.DONE, answer)
        self.assertLess(answered_at - confirmed_at, 5)

    def test_an_empty_torrent_is_done(self):
        self.assertEqual(registry.FirstCopies.DONE,
                         registry.FirstCopies(0).take())

    def test_swarms_hand_out_first_copies_per_tracked_torrent(self):
        swarms = registry.Swarms(60, clock=self.clock)
        swarms.track(HASH.hex(), num_pieces=2)
        self.assertEqual(0, swarms.take_first_copy(HASH))
        self.assertEqual(1, swarms.take_first_copy(HASH))
        self.assertRaises(KeyError, swarms.take_first_copy, OTHER_HASH)
        swarms.untrack(HASH.hex())
        self.assertRaises(KeyError, swarms.take_first_copy, HASH)


class TrackerServerTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tracker = tracker.Tracker(('127.0.0.1', 0), 30)
        self.tracker.start()
        self.addCleanup(self.tracker.stop)
        self.tracker.swarms.track(HASH.hex(), num_pieces=2, passkey=PASSKEY)
        # A first-copy request that must wait does not hold for 5 s.
        self.useFixture(fixtures.MockPatchObject(tracker, 'INJECT_WAIT',
                                                 0.1))

    def fetch(self, path, query):
        url = 'http://127.0.0.1:%d%s?%s' % (self.tracker.port, path, query)
        with urllib.request.urlopen(url, timeout=10) as response:
            return lt.bdecode(response.read())

    def get(self, path, **fields):
        values = {'info_hash': HASH, 'peer_id': peer_id(1), 'port': '6881',
                  'left': '10', 'compact': '1', 'passkey': PASSKEY}
        values.update(fields)
        return self.fetch(path, urllib.parse.urlencode(values))

    def test_announce_returns_compact_peers(self):
        self.assertEqual(b'', self.get('/announce')[b'peers'])
        answer = self.get('/announce', peer_id=peer_id(2), port='7000')
        self.assertEqual(bytes([127, 0, 0, 1]) + struct.pack('!H', 6881),
                         answer[b'peers'])
        self.assertEqual(30, answer[b'interval'])
        self.assertEqual(15, answer[b'min interval'])
        self.assertEqual(2, answer[b'incomplete'])
        self.assertEqual(0, answer[b'complete'])

    def test_unknown_torrent_gets_a_failure_reason(self):
        answer = self.get('/announce', info_hash=OTHER_HASH)
        self.assertIn(b'is not seeded here', answer[b'failure reason'])

    def test_malformed_announce_gets_a_failure_reason(self):
        answer = self.get('/announce', port='-1')
        self.assertEqual(b'bad port -1', answer[b'failure reason'])

    def inject(self, query, passkey=PASSKEY):
        if passkey is not None:
            query = 'passkey=%s&%s' % (passkey, query)
        return self.fetch(tracker.INJECT_PATH, query)

    def test_inject_hands_out_pieces_then_waits_then_is_done(self):
        self.get('/announce')
        query = 'info_hash=' + HASH.hex()
        self.assertEqual({b'piece': 0}, self.inject(query))
        self.assertEqual({b'piece': 1}, self.inject(query))
        self.assertEqual({b'wait': 1}, self.inject(query + '&done=0'))
        self.assertEqual({b'done': 1}, self.inject(query + '&done=1'))

    def test_inject_take_0_only_confirms(self):
        self.get('/announce')
        query = 'info_hash=' + HASH.hex()
        self.assertEqual({b'piece': 0}, self.inject(query))
        self.assertEqual({b'piece': 1}, self.inject(query))
        # An agent whose download ended confirms piece 1 and takes nothing.
        self.assertEqual({b'done': 1},
                         self.inject(query + '&take=0&done=1'))
        self.assertEqual({b'wait': 1}, self.inject(query))
        self.assertEqual({b'done': 1}, self.inject(query + '&done=0'))

    def test_malformed_or_unknown_inject_gets_a_failure_reason(self):
        self.assertIn(b'malformed first-copy request',
                      self.inject('info_hash=xyz')[b'failure reason'])
        self.assertIn(b'malformed first-copy request',
                      self.inject('info_hash=%s&done=x' % HASH.hex())[
                          b'failure reason'])
        self.assertIn(b'is not seeded here', self.inject(
            'info_hash=' + OTHER_HASH.hex())[b'failure reason'])

    def test_other_paths_are_not_found(self):
        self.assertRaises(urllib.error.HTTPError, self.get, '/scrape')
