"""TempURLs whose expiry moves in steps."""

import hmac
import urllib.parse

from precache.service.servers import tempurl
from precache.tests import base

DAY = 86400


class ExpiryTest(base.TestCase):

    def test_validity_stays_between_min_remaining_and_lifetime(self):
        for now in range(10 ** 9, 10 ** 9 + 14 * DAY, 3571):
            remaining = tempurl.expiry(7 * DAY, DAY, now) - now
            self.assertGreater(remaining, DAY)
            self.assertLessEqual(remaining, 7 * DAY)

    def test_same_expiry_within_a_window(self):
        start = 6 * DAY * 1000
        self.assertEqual(tempurl.expiry(7 * DAY, DAY, start),
                         tempurl.expiry(7 * DAY, DAY, start + 6 * DAY - 1))
        self.assertNotEqual(tempurl.expiry(7 * DAY, DAY, start),
                            tempurl.expiry(7 * DAY, DAY, start + 6 * DAY))


class SignTest(base.TestCase):

    def test_signature_covers_the_object_path(self):
        url = tempurl.sign('http://swift:8080/v1/AUTH_test/', 'precache',
                           'img 1/abc.img.zst', 'secret', 2000000000)
        parts = urllib.parse.urlsplit(url)
        self.assertEqual('/v1/AUTH_test/precache/img%201/abc.img.zst',
                         parts.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.assertEqual('2000000000', query['temp_url_expires'])
        body = 'GET\n2000000000\n/v1/AUTH_test/precache/img 1/abc.img.zst'
        expected = hmac.new(b'secret', body.encode(), 'sha256').hexdigest()
        self.assertEqual(expected, query['temp_url_sig'])
        self.assertEqual('http://swift:8080/v1/AUTH_test/precache/'
                         'img%201/abc.img.zst',
                         tempurl.without_signature(url))
