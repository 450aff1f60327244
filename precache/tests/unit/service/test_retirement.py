"""The retirement policy: what the image server may remove, and when."""

import contextlib

from precache.service import retirement
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0

GRACE = 3600


class FakeServer(object):
    def __init__(self, broken=()):
        self.retired = []
        self.broken = broken

    def retire(self, image_id):
        if image_id in self.broken:
            raise OSError('disk on fire')
        self.retired.append(image_id)


@contextlib.contextmanager
def free(image_id):
    yield True


class RetirementTests(object):
    """The policy on a state database.

    Run on MariaDB and PostgreSQL by the functional tests too.
    """

    def setUp(self):
        super().setUp()
        self.flags(group='service', retire_grace_period=GRACE)
        self.server = FakeServer()
        self.policy = retirement.Retirement(self.conf, self.db, self.server)

    def unlist(self, now):
        """A complete listing without any image: all are unlisted."""
        self.db.record_listing([], complete=True, now=now)

    def sweep(self, now, unless_busy=free):
        return self.policy.sweep(unless_busy, now=now)

    def test_listed_images_are_never_retired(self):
        self.add_image('a', now=T0)
        self.assertEqual([], self.sweep(at(10 * GRACE)))

    def test_unlisted_image_is_retired_after_the_grace_period(self):
        self.add_image('a', now=T0)
        self.unlist(at(100))
        self.assertEqual([], self.sweep(at(100 + GRACE - 1)))
        self.assertEqual(['a'], self.sweep(at(100 + GRACE)))
        self.assertEqual(['a'], self.server.retired)

    def test_retired_once_until_desired_again(self):
        self.add_image('a', now=T0)
        self.unlist(at(100))
        self.assertEqual(['a'], self.sweep(at(100 + GRACE)))
        self.assertEqual([], self.sweep(at(100 + 2 * GRACE)))
        self.add_image('a', now=at(200 + 2 * GRACE))
        self.assertEqual([], self.sweep(at(200 + 2 * GRACE)))
        self.unlist(at(300 + 2 * GRACE))
        self.assertEqual(['a'], self.sweep(at(300 + 3 * GRACE)))
        self.assertEqual(['a', 'a'], self.server.retired)

    def test_grace_counts_from_the_last_round(self):
        self.add_image('a', now=T0)
        self.unlist(at(100))
        round_id = self.db.open_round('a', 1, 'targeted', [], now=at(1000))
        # An open round keeps the image, however old.
        self.assertEqual([], self.sweep(at(1000 + 5 * GRACE)))
        self.db.end_rounds(at(2000), now=at(2000))
        self.assertIsNotNone(round_id)
        # Ended: the grace counts from the round's start.
        self.assertEqual([], self.sweep(at(1000 + GRACE - 1)))
        self.assertEqual(['a'], self.sweep(at(1000 + GRACE)))

    def test_requested_image_waits_for_its_pin_and_release(self):
        self.db.request('r', None, at(5000), now=T0)
        self.assertEqual([], self.sweep(at(4999)))
        # The pin ran out at 5000: the grace counts from then.
        self.assertEqual([], self.sweep(at(5000 + GRACE - 1)))
        self.assertEqual(['r'], self.sweep(at(5000 + GRACE)))

    def test_released_image_counts_from_its_release(self):
        self.db.request('r', None, None, now=T0)
        self.assertEqual([], self.sweep(at(10 * GRACE)))
        self.db.release('r', now=at(10 * GRACE))
        self.assertEqual([], self.sweep(at(11 * GRACE - 1)))
        self.assertEqual(['r'], self.sweep(at(11 * GRACE)))

    def test_image_being_processed_is_skipped(self):
        self.add_image('a', now=T0)
        self.unlist(at(100))

        @contextlib.contextmanager
        def busy(image_id):
            yield False

        self.assertEqual([], self.sweep(at(2 * GRACE), busy))
        self.assertEqual([], self.server.retired)
        self.assertEqual(['a'], self.sweep(at(2 * GRACE)))

    def test_failure_is_retried_at_the_next_sweep(self):
        self.add_image('a', now=T0)
        self.add_image('b', now=T0)
        self.unlist(at(100))
        self.server.broken = ('a',)
        self.assertEqual(['b'], self.sweep(at(2 * GRACE)))
        self.server.broken = ()
        self.assertEqual(['a'], self.sweep(at(2 * GRACE + 60)))

    def test_zero_grace_retires_at_once(self):
        self.flags(group='service', retire_grace_period=0)
        self.add_image('a', now=T0)
        self.unlist(at(100))
        self.assertEqual(['a'], self.sweep(at(100)))

    def test_round_activity(self):
        self.add_image('a', now=T0)
        self.db.open_round('a', 1, 'fanout', [], now=at(10))
        self.db.open_round('a', 1, 'targeted', [], now=at(20))
        self.db.end_rounds(at(15), now=at(30))
        self.assertEqual({'a': (at(20), 1)}, self.db.round_activity())


class RetirementTest(RetirementTests, state_base.StateTestCase):
    """On sqlite."""
