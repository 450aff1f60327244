"""A download below the minimum rate parks; one that speeds up resumes."""

import threading

from precache.agent import pacing
from precache.agent import slots
from precache.agent import watchdog as watchdog_mod
from precache.tests import base


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class PacerTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.watchdog = watchdog_mod.Watchdog(
            deadline=600, min_rate=100, window=60, clock=self.clock)
        self.pool = slots.DownloadSlots(lambda: 1, lambda: self.parked,
                                        lambda: 4)
        self.parked = 1
        self.ticket = self.pool.admit('a')
        self.assertTrue(self.pool.acquire(self.ticket, threading.Event()))
        self.pacer = pacing.Pacer(self.watchdog, self.ticket, min_rate=100,
                                  grace=5, label='Image x')

    def tick(self, seconds, received):
        """Let ``seconds`` pass, receiving ``received`` bytes/s."""
        for _ in range(int(seconds * 4)):
            self.clock.now += 0.25
            self.watchdog.count(int(received / 4))
            stop = self.pacer.is_set()
        return stop

    def test_a_fast_download_keeps_its_slot(self):
        self.assertFalse(self.tick(20, 1000))
        self.assertTrue(self.ticket.active)

    def test_bytes_received_ahead_keep_the_slot(self):
        for _ in range(80):
            self.clock.now += 0.25
            self.watchdog.ahead(int(self.clock.now * 1000))
            self.assertFalse(self.pacer.is_set())
        self.assertTrue(self.ticket.active)

    def test_a_slow_download_parks_then_resumes(self):
        self.assertFalse(self.tick(4, 10))
        self.assertTrue(self.ticket.active)  # within its grace
        self.assertFalse(self.tick(2, 10))
        self.assertTrue(self.ticket.parked)
        self.assertEqual({'parked': 1}, dict(self.pool.counts()))
        self.assertFalse(self.tick(6, 1000))
        self.assertTrue(self.ticket.active)
        self.assertIsNone(self.pacer.reason)

    def test_a_slow_download_fails_when_the_parking_is_full(self):
        self.parked = 1
        other = self.pool.admit('b', bounded=False)
        self.ticket.park()
        self.assertTrue(self.pool.acquire(other, threading.Event()))
        pacer = pacing.Pacer(self.watchdog, other, 100, 5, 'Image y')
        self.pacer = pacer
        self.assertTrue(self.tick(6, 10))
        self.assertIn('max_parked_downloads', pacer.reason)
        self.assertTrue(other.active)

    def test_no_parking_when_turned_off(self):
        self.parked = 0
        self.assertFalse(self.tick(10, 10))
        self.assertTrue(self.ticket.active)

    def test_the_watchdog_still_decides(self):
        self.assertTrue(self.tick(61, 10))
        self.assertIn('min_download_rate', self.pacer.reason)

    def test_time_waiting_for_the_bandwidth_cap_does_not_count(self):
        with self.watchdog.paused():
            self.clock.now += 30
            self.assertFalse(self.pacer.is_set())
        self.assertEqual(0, self.watchdog.active_seconds())
        self.assertTrue(self.ticket.active)

    def test_without_ticket_only_the_watchdog(self):
        pacer = pacing.Pacer(self.watchdog, None, 100, 5)
        self.clock.now += 10
        self.assertFalse(pacer.is_set())
        self.assertIsNone(pacer.reason)
