"""The agent's record of wanted images."""

from precache.agent import wanted
from precache.objects import image
from precache.tests import base


def request(generation, pin_until=None):
    return {'generation': generation, 'pin_until': pin_until}


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
