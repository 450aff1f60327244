"""The agent's record of wanted images."""

from precache.agent import wanted
from precache.objects import image
from precache.tests import base


OTHER_EPOCH = 'fedcba9876543210' * 2


def request(generation, pin_until=None, epoch=base.EPOCH):
    return {'epoch': epoch, 'generation': generation, 'pin_until': pin_until}


class WantedImagesTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.wanted = wanted.WantedImages(expiry=100)
        self.image = image.ImageRecord(id='img')

    def test_expires_after_last_request(self):
        self.wanted.add(self.image, request(1), now=1000)
        self.assertEqual(['img'],
                         [i.id for i in self.wanted.current(now=1099)])
        self.assertEqual([], self.wanted.current(now=1101))

    def test_pin_until_extends(self):
        self.wanted.add(self.image, request(1, pin_until=5000), now=1000)
        self.assertEqual(1, len(self.wanted.current(now=4999)))
        self.assertEqual(0, len(self.wanted.current(now=5001)))

    def test_stale_generation_is_refused(self):
        self.assertTrue(self.wanted.add(self.image, request(5), now=1000))
        self.assertFalse(self.wanted.add(self.image, request(4), now=1001))
        self.assertTrue(self.wanted.add(self.image, request(5), now=1002))

    def test_another_epoch_is_followed_whatever_its_generation(self):
        # The service's database was recreated: its counters may be lower,
        # or (a clock set far ahead before) much higher.
        self.assertTrue(self.wanted.add(self.image, request(10 ** 15),
                                        now=1000))
        self.assertTrue(self.wanted.add(
            self.image, request(3, epoch=OTHER_EPOCH), now=1001))
        # From then on, the new epoch's order holds.
        self.assertFalse(self.wanted.add(
            self.image, request(2, epoch=OTHER_EPOCH), now=1002))
        self.assertTrue(self.wanted.add(
            self.image, request(4, epoch=OTHER_EPOCH), now=1003))
