"""Download slots: parking, fair hand-out between origins, bounded queue."""

import threading

from precache.agent import slots
from precache.tests import base

A = 'http://a.example:80'
B = 'http://b.example:80'


class DownloadSlotsTest(base.TestCase):

    def make(self, active=1, parked=2, queued=3):
        return slots.DownloadSlots(lambda: active, lambda: parked,
                                   lambda: queued)

    def acquire(self, pool, ticket):
        self.assertTrue(pool.acquire(ticket, threading.Event()))

    def waiter(self, pool, ticket):
        """Acquire ``ticket`` in a thread; return (thread, outcome)."""
        outcome = []

        def run():
            try:
                outcome.append(pool.acquire(ticket, None))
            except slots.Evicted:
                outcome.append('evicted')

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, outcome

    def test_origin_of(self):
        self.assertEqual('http://origin:8780', slots.origin_of(
            [{'method': 'http', 'url': 'HTTP://Origin:8780/x'}]))
        self.assertEqual('http://tracker:1', slots.origin_of(
            [{'method': 'bittorrent', 'inject_url': 'http://tracker:1/i'}]))
        self.assertEqual('glance', slots.origin_of([{'method': 'glance'}]))
        self.assertEqual('', slots.origin_of([]))

    def test_a_parked_download_frees_its_slot(self):
        pool = self.make()
        slow = pool.admit(A)
        self.acquire(pool, slow)
        other = pool.admit(B)
        thread, outcome = self.waiter(pool, other)
        thread.join(0.5)
        self.assertEqual([], outcome)  # the slot is taken
        self.assertTrue(slow.park())
        thread.join(5)
        self.assertEqual([True], outcome)
        self.assertEqual({'parked': 1, 'active': 1}, dict(pool.counts()))

    def test_parking_is_bounded(self):
        pool = self.make(active=3, parked=1)
        first, second = pool.admit(A), pool.admit(A)
        self.acquire(pool, first)
        self.acquire(pool, second)
        self.assertTrue(first.park())
        self.assertFalse(second.park())
        self.assertTrue(second.active)
        self.assertEqual(1, first.parking_limit())

    def test_a_resumed_download_waits_for_a_slot(self):
        pool = self.make()
        slow = pool.admit(A)
        self.acquire(pool, slow)
        self.assertTrue(slow.park())
        other = pool.admit(B)
        self.acquire(pool, other)
        stop = threading.Event()
        resumed = []
        thread = threading.Thread(
            target=lambda: resumed.append(slow.resume(stop)), daemon=True)
        thread.start()
        thread.join(0.5)
        self.assertEqual([], resumed)
        pool.release(other)
        thread.join(5)
        self.assertEqual([True], resumed)
        self.assertTrue(slow.active)

    def test_resume_gives_up_when_cancelled(self):
        pool = self.make()
        slow, other = pool.admit(A), pool.admit(B)
        self.acquire(pool, slow)
        self.assertTrue(slow.park())
        self.acquire(pool, other)
        stop = threading.Event()
        stop.set()
        self.assertFalse(slow.resume(stop))
        self.assertTrue(slow.parked)

    def test_a_free_slot_goes_to_the_least_served_origin(self):
        pool = self.make()
        running = pool.admit(A)
        self.acquire(pool, running)
        queued_a = pool.admit(A)
        queued_b = pool.admit(B)  # arrives later
        thread_a, outcome_a = self.waiter(pool, queued_a)
        thread_b, outcome_b = self.waiter(pool, queued_b)
        self.assertTrue(running.park())  # A still has a download
        thread_b.join(5)
        self.assertEqual([True], outcome_b)
        self.assertEqual([], outcome_a)
        pool.release(queued_b)
        thread_a.join(5)
        self.assertEqual([True], outcome_a)

    def test_a_full_queue_is_busy_for_the_flooding_origin(self):
        pool = self.make(queued=3)
        self.acquire(pool, pool.admit(A))
        waiting = [pool.admit(A) for _ in range(3)]
        self.assertNotIn(None, waiting)
        self.assertIsNone(pool.admit(A))
        self.assertEqual(4, len(pool))

    def test_another_origin_takes_the_flood_s_newest_place(self):
        pool = self.make(queued=3)
        self.acquire(pool, pool.admit(A))
        waiting = [pool.admit(A) for _ in range(3)]
        newest = waiting[-1]
        thread, outcome = self.waiter(pool, newest)
        from_b = pool.admit(B)
        self.assertIsNotNone(from_b)
        thread.join(5)
        self.assertEqual(['evicted'], outcome)
        self.assertEqual('evicted', newest.state)
        # Origins about even (A 2, B 1 waiting): nobody is evicted.
        pool.release(newest)
        self.assertIsNone(pool.admit(B))
        self.assertIsNone(pool.admit(A))
        self.assertEqual(['waiting'] * 3, [t.state for t in (
            waiting[0], waiting[1], from_b)])

    def test_unbounded_admission_and_release(self):
        pool = self.make(queued=0)
        self.acquire(pool, pool.admit(A))
        self.assertIsNone(pool.admit(A))
        ticket = pool.admit(A, bounded=False)
        self.assertIsNotNone(ticket)
        pool.release(ticket)
        self.assertEqual('done', ticket.state)
        self.assertEqual(1, len(pool))

    def test_cancelled_wait(self):
        pool = self.make()
        self.acquire(pool, pool.admit(A))
        stop = threading.Event()
        stop.set()
        ticket = pool.admit(B)
        self.assertFalse(pool.acquire(ticket, stop))
        self.assertEqual('waiting', ticket.state)
