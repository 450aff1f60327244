"""The sample Squid configuration in front of the http server's web server.

A real Squid, configured by ``etc/squid/precache-squid.conf`` with only its
placeholders replaced, proxies a real
:class:`precache.service.servers.httpd.Server`
whose requests are counted: a second fetch must be a hit that costs the
origin nothing, a resumed (Range) first fetch must still cache the whole
artifact, and an expired entry must be revalidated with the ETag (304, no
body) rather than fetched again.
"""

import os
import threading
import time

import requests

from precache.service.servers import httpd
from precache.tests.fixtures import squid
from precache.tests.functional import base

ARTIFACT_SIZE = 3 * 1024 * 1024 + 17


class _CountingHandler(httpd.RequestHandler):
    """The origin's handler, recording each answer's status and length."""

    def send_response(self, code, message=None):
        self._answer = {'path': self.path, 'code': code, 'length': 0,
                        'headers': dict(self.headers)}
        super().send_response(code, message)

    def send_header(self, keyword, value):
        if keyword == 'Content-Length':
            self._answer['length'] = int(value)
        super().send_header(keyword, value)

    def end_headers(self):
        super().end_headers()
        with self.server.answers_lock:
            self.server.answers.append(self._answer)


class _CountingServer(httpd.Server):

    def __init__(self, *args):
        self.answers = []
        self.answers_lock = threading.Lock()
        super().__init__(*args)
        self.RequestHandlerClass = _CountingHandler


class SquidTierTest(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.tempdir, 'www')
        os.makedirs(os.path.join(self.root, 'image-1'))
        self.body = os.urandom(ARTIFACT_SIZE)
        self.path = '/image-1/0123456789abcdef.img.zst'
        with open(self.root + self.path, 'wb') as f:
            f.write(self.body)
        self.proxy = self.useFixture(squid.SquidFixture(self.tempdir))

    def start_origin(self, max_age):
        origin = _CountingServer(('127.0.0.1', 0), self.root, max_age, 8)
        origin.start('squid-test-origin')
        self.addCleanup(origin.stop)
        self.url = 'http://127.0.0.1:%d%s' % (origin.port, self.path)
        return origin

    def get(self, headers=None):
        response = requests.get(self.url, headers=headers, timeout=30,
                                proxies={'http': self.proxy.url})
        return response

    def squid_result(self, index):
        """Squid's result code for the index-th request it logged."""
        entries = self.proxy.access_entries()
        return entries[index][3].split('/')[0], entries[index][8]

    def wait_for_log(self, count):
        # Squid writes the access log line when a transfer ends; it may
        # come a moment after the client has read the last byte.
        deadline = time.monotonic() + 10
        while len(self.proxy.access_entries()) < count:
            self.assertLess(time.monotonic(), deadline, self.proxy.log_tail())
            time.sleep(0.05)

    def test_second_fetch_is_a_hit(self):
        origin = self.start_origin(max_age=86400)
        first = self.get()
        second = self.get()

        self.assertEqual(200, first.status_code)
        self.assertEqual(self.body, first.content)
        self.assertEqual(self.body, second.content)
        self.assertEqual(first.headers['ETag'], second.headers['ETag'])
        self.assertEqual('public, max-age=86400',
                         second.headers['Cache-Control'])
        self.wait_for_log(2)
        self.assertEqual(('TCP_MISS', 'HIER_DIRECT/127.0.0.1'),
                         self.squid_result(0))
        self.assertIn(self.squid_result(1)[0], ('TCP_HIT', 'TCP_MEM_HIT'))
        # The origin sent the artifact once.
        self.assertEqual([(200, ARTIFACT_SIZE)],
                         [(a['code'], a['length']) for a in origin.answers])

    def test_range_request_caches_the_whole_artifact(self):
        origin = self.start_origin(max_age=86400)
        offset = 1024 * 1024
        resumed = self.get({'Range': 'bytes=%d-' % offset})
        self.assertEqual(206, resumed.status_code)
        self.assertEqual(self.body[offset:], resumed.content)
        self.wait_for_log(1)

        full = self.get()

        self.assertEqual(self.body, full.content)
        self.wait_for_log(2)
        self.assertIn(self.squid_result(1)[0], ('TCP_HIT', 'TCP_MEM_HIT'))
        # Squid asked the origin for everything (no Range) once.
        self.assertEqual([(200, ARTIFACT_SIZE)],
                         [(a['code'], a['length']) for a in origin.answers])
        self.assertNotIn('Range', origin.answers[0]['headers'])

    def test_expired_entry_is_revalidated_with_the_etag(self):
        origin = self.start_origin(max_age=1)
        first = self.get()
        # Let the entry's max-age of 1 s run out.
        time.sleep(2.5)

        second = self.get()

        self.assertEqual(self.body, second.content)
        self.wait_for_log(2)
        self.assertEqual('TCP_REFRESH_UNMODIFIED', self.squid_result(1)[0])
        self.assertEqual([(200, ARTIFACT_SIZE), (304, 0)],
                         [(a['code'], a['length']) for a in origin.answers])
        self.assertEqual(first.headers['ETag'],
                         origin.answers[1]['headers'].get('If-None-Match'))
