"""The tracker guard forwards allowed requests and refuses the others."""

import http.client
import http.server
import threading

from precache.agent import origins
from precache.agent import tracker_guard
from precache.tests import base


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.paths.append(self.path)
        if self.path.startswith('/announce'):
            body = b'd8:intervali60ee'
            self.send_response(200)
        else:
            body = b''
            self.send_response(302)
            self.send_header('Location', 'http://localhost:1/elsewhere')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TrackerGuardTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.upstream = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                        _Upstream)
        self.upstream.paths = []
        threading.Thread(target=self.upstream.serve_forever,
                         daemon=True).start()
        self.addCleanup(self.upstream.server_close)
        self.addCleanup(self.upstream.shutdown)
        self.url = 'http://127.0.0.1:%d/' % self.upstream.server_port
        allowed = origins.Origins([self.url])
        self.guard = tracker_guard.TrackerGuard(lambda: allowed).start()
        self.addCleanup(self.guard.stop)

    def request(self, method, target):
        connection = http.client.HTTPConnection('127.0.0.1', self.guard.port,
                                                timeout=10)
        self.addCleanup(connection.close)
        connection.request(method, target)
        response = connection.getresponse()
        return response.status, response.getheader('Location'), \
            response.read()

    def test_allowed_request_is_forwarded(self):
        status, _, body = self.request('GET', self.url + 'announce?x=1')
        self.assertEqual((200, b'd8:intervali60ee'), (status, body))
        self.assertEqual(['/announce?x=1'], self.upstream.paths)

    def test_redirect_is_handed_back_not_followed(self):
        status, location, _ = self.request('GET', self.url + 'moved')
        self.assertEqual((302, 'http://localhost:1/elsewhere'),
                         (status, location))
        self.assertEqual(0, self.guard.refused)

    def test_foreign_url_is_refused_without_connecting(self):
        status, _, body = self.request('GET', 'http://localhost:1/elsewhere')
        self.assertEqual(403, status)
        self.assertIn(b'localhost', body)
        self.assertEqual(1, self.guard.refused)

    def test_tunnels_are_refused(self):
        status, _, _ = self.request('CONNECT', '127.0.0.1:443')
        self.assertEqual(403, status)

    def test_session_settings(self):
        settings = self.guard.session_settings()
        self.assertEqual(self.guard.port, settings['proxy_port'])
        self.assertFalse(settings['proxy_peer_connections'])
        self.assertTrue(settings['proxy_tracker_connections'])
