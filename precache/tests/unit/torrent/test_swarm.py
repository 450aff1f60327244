"""Tests of the in-order cursor, the stall watchdog and piece ranges."""

import types

import libtorrent as lt

from precache.tests import base
from precache.torrent import injector
from precache.torrent import pieces
from precache.torrent import progress
from precache.torrent import swarm


class PieceCursorTest(base.TestCase):

    def test_pieces_finishing_out_of_order_are_read_in_order(self):
        cursor = pieces.PieceCursor(5, window=2)
        read = []
        for finished in (3, 1, 4, 0, 2):
            cursor.finished(finished)
            while True:
                piece = cursor.take()
                if piece is None:
                    break
                cursor.read(piece)
                read.append(piece)
        self.assertEqual([0, 1, 2, 3, 4], read)
        self.assertTrue(cursor.complete)

    def test_one_read_at_a_time(self):
        cursor = pieces.PieceCursor(3, window=0)
        cursor.finished(0)
        cursor.finished(1)
        self.assertEqual(0, cursor.take())
        self.assertIsNone(cursor.take())  # piece 0 is still being read
        cursor.read(0)
        self.assertEqual(1, cursor.take())
        self.assertFalse(cursor.complete)

    def test_reading_another_piece_than_taken_is_an_error(self):
        cursor = pieces.PieceCursor(3, window=0)
        self.assertRaises(ValueError, cursor.read, 0)  # nothing taken
        cursor.finished(0)
        cursor.take()
        self.assertRaises(ValueError, cursor.read, 1)

    def test_window_boosts_the_next_pieces_once(self):
        cursor = pieces.PieceCursor(10, window=3)
        self.assertEqual([0, 1, 2], cursor.to_boost())
        self.assertEqual([], cursor.to_boost())
        cursor.finished(0)
        cursor.finished(4)
        cursor.read(cursor.take())
        # The window is now 1-3: 3 is new; 4 is done, outside anyway.
        self.assertEqual([3], cursor.to_boost())
        cursor.finished(1)
        cursor.read(cursor.take())
        self.assertEqual([], cursor.to_boost())  # 2, 3 boosted, 4 done

    def test_window_stops_at_the_last_piece(self):
        cursor = pieces.PieceCursor(2, window=8)
        self.assertEqual([0, 1], cursor.to_boost())

    def test_zero_window_boosts_nothing(self):
        cursor = pieces.PieceCursor(4, window=0)
        self.assertEqual([], cursor.to_boost())

    def test_finished_pieces_already_passed_on_are_ignored(self):
        cursor = pieces.PieceCursor(2, window=0)
        cursor.finished(0)
        cursor.read(cursor.take())
        cursor.finished(0)  # e.g. a late duplicate alert
        self.assertIsNone(cursor.take())


class WatchdogTest(base.TestCase):

    def test_web_seeds_after_delay_then_stall(self):
        dog = progress.Watchdog(stall_timeout=30, web_seed_delay=10, now=100)
        self.assertIsNone(dog.observe(0, 100))
        self.assertIsNone(dog.observe(5, 105))    # progress
        self.assertIsNone(dog.observe(5, 114))    # idle 9 s
        self.assertEqual(dog.WEB_SEEDS, dog.observe(5, 115))
        self.assertIsNone(dog.observe(5, 120))    # only once
        exc = self.assertRaises(swarm.SwarmError, dog.observe, 5, 135)
        self.assertIn('no progress for 30 s', str(exc))

    def test_progress_resets_the_stall_clock(self):
        dog = progress.Watchdog(stall_timeout=10, web_seed_delay=-1, now=0)
        for t in range(0, 100, 5):
            self.assertIsNone(dog.observe(t, t))

    def test_no_web_seeds_when_delay_is_not_positive(self):
        for delay in (0, -1):
            dog = progress.Watchdog(stall_timeout=10,
                                    web_seed_delay=delay, now=0)
            self.assertIsNone(dog.observe(0, 9))


class AloneTimerTest(base.TestCase):

    def test_due_after_the_interval_alone_then_at_each_interval(self):
        timer = progress.AloneTimer(10)
        self.assertFalse(timer.due(0, 100))
        self.assertFalse(timer.due(0, 109))
        self.assertTrue(timer.due(0, 110))
        self.assertFalse(timer.due(0, 115))
        self.assertTrue(timer.due(0, 120))

    def test_a_connected_peer_resets_the_clock(self):
        timer = progress.AloneTimer(10)
        self.assertFalse(timer.due(0, 0))
        self.assertFalse(timer.due(2, 9))
        self.assertFalse(timer.due(0, 12))
        self.assertFalse(timer.due(0, 21))
        self.assertTrue(timer.due(0, 22))
        self.assertFalse(timer.due(1, 40))


class TransferTest(base.TestCase):

    @staticmethod
    def peer(ip, downloaded, kind=lt.peer_info.standard_bittorrent):
        return types.SimpleNamespace(ip=ip, total_download=downloaded,
                                     connection_type=kind)

    def test_bytes_per_kind_of_sender(self):
        seed = ('198.18.0.1', 6881)
        transfer = progress.Transfer([seed])
        transfer.sample([self.peer(seed, 10),
                         self.peer(('198.18.0.2', 6881), 5)])
        transfer.sample([self.peer(seed, 30),
                         self.peer(('198.18.0.3', 6881), 7),
                         self.peer(('198.18.0.1', 80), 100,
                                   lt.peer_info.web_seed)])
        self.assertEqual(30, transfer.received(transfer.LISTED))
        self.assertEqual(12, transfer.received(transfer.OTHERS))
        self.assertEqual(100, transfer.received(transfer.WEB_SEEDS))
        self.assertEqual(0, transfer.received(transfer.UNKNOWN))
        transfer.total = 150
        self.assertEqual(8, transfer.received(transfer.UNKNOWN))


class HomePrioritiesTest(base.TestCase):

    def test_bands_start_at_home_and_wrap(self):
        self.assertEqual([6, 6, 5, 5, 4, 4, 3, 3],
                         pieces.home_priorities(8, 0.0))
        self.assertEqual([4, 3, 3, 6, 6, 5, 5, 4],
                         pieces.home_priorities(8, 3 / 8))

    def test_every_piece_wanted_and_bands_even(self):
        priorities = pieces.home_priorities(137, 0.61)
        self.assertEqual(137, len(priorities))
        counts = [priorities.count(p) for p in pieces.BAND_PRIORITIES]
        self.assertLessEqual(max(counts) - min(counts), 1)
        self.assertEqual(6, priorities[int(0.61 * 137)])

    def test_different_homes_start_with_different_pieces(self):
        first = pieces.home_priorities(64, 0.1)
        second = pieces.home_priorities(64, 0.6)
        top_first = {i for i, p in enumerate(first) if p == 6}
        top_second = {i for i, p in enumerate(second) if p == 6}
        self.assertEqual(set(), top_first & top_second)

    def test_single_piece(self):
        self.assertEqual([6], pieces.home_priorities(1, 0.9))


class ByteRangeTest(base.TestCase):

    def test_whole_and_short_last_pieces(self):
        self.assertEqual((0, 99), injector.byte_range(0, 100, 250))
        self.assertEqual((200, 249), injector.byte_range(2, 100, 250))

    def test_piece_beyond_the_torrent_is_refused(self):
        self.assertRaises(injector.InjectError, injector.byte_range,
                          3, 100, 250)
