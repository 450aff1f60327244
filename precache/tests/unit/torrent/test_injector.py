"""The HTTP side of first copies (precache/torrent/injector.py)."""

import http.server
import threading
import types

import fixtures
import requests

from precache.tests import base
from precache.torrent import injector


class _ClosingHandler(http.server.BaseHTTPRequestHandler):
    """Closes every second request's connection without an answer.

    As the tracker does with a keep-alive connection left idle beyond
    its head timeout, when its close reaches the client only after the
    client sent its next request on it (a busy link).
    """

    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        self.server.requests += 1
        if self.server.requests % 2 == 0:
            self.close_connection = True
            return
        body = b'd5:piecei%dee' % self.server.requests
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class HttpSessionTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      _ClosingHandler)
        self.server.requests = 0
        thread = threading.Thread(target=self.server.serve_forever,
                                  daemon=True)
        thread.start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = 'http://127.0.0.1:%d/inject' % self.server.server_port

    def test_a_request_on_a_connection_the_server_closed_is_sent_again(self):
        session = injector.http_session()
        self.addCleanup(session.close)
        answers = [session.get(self.url, timeout=5).content
                   for _ in range(3)]
        # Requests 2 and 4 found their connection closed and were sent
        # again.
        self.assertEqual([b'd5:piecei1ee', b'd5:piecei3ee', b'd5:piecei5ee'],
                         answers)

    def test_a_plain_session_would_fail(self):
        session = requests.Session()
        self.addCleanup(session.close)
        session.get(self.url, timeout=5)
        self.assertRaises(requests.ConnectionError, session.get, self.url,
                          timeout=5)

    def test_redirects_are_not_followed(self):
        session = injector.http_session()
        self.addCleanup(session.close)
        self.assertEqual(0, session.max_redirects)


class _Handle(object):
    """A torrent handle: its tracker answers after some looks."""

    def __init__(self, answered_after):
        self.looks = 0
        self.answered_after = answered_after

    def torrent_file(self):
        return types.SimpleNamespace(piece_length=lambda: 65536,
                                     total_size=lambda: 65536)

    def status(self):
        self.looks += 1
        tracker = ('http://tracker/announce'
                   if self.looks > self.answered_after else '')
        return types.SimpleNamespace(current_tracker=tracker)


class WaitForAnnounceTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(injector, 'ANNOUNCE_POLL',
                                                 0.001))

    def injector(self, handle):
        return injector.Injector(handle, 'http://tracker/inject',
                                 'http://origin/artifact', 'ab' * 20)

    def test_asks_only_once_the_announce_was_answered(self):
        handle = _Handle(answered_after=3)
        self.injector(handle)._wait_for_announce()
        self.assertEqual(4, handle.looks)

    def test_gives_up_when_no_tracker_answers(self):
        self.useFixture(fixtures.MockPatchObject(injector, 'TIMEOUT', 0.05))
        exc = self.assertRaises(injector.InjectError,
                                self.injector(_Handle(10 ** 9))
                                ._wait_for_announce)
        self.assertIn('no tracker answered', str(exc))
