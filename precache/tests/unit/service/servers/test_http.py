"""Tests of the http image server and its built-in web server.

The built-in server runs for real on 127.0.0.1 (port 0: a free port) and
is queried with real HTTP requests.
"""

import hashlib
import http.client
import io
import os
import random
import socket
import threading
import time
from unittest import mock

import fixtures

from precache.common import compression
from precache.common import exception
from precache.common import fileutils
from precache.objects import image as image_mod
from precache.objects import meta
from precache.service.servers import http as http_server
from precache.service.servers import httpd
from precache.tests import base

IMAGE_ID = '6f1a4c1e-2b8d-4c55-9f2e-0d5c3a7b9e10'


def make_image_bytes(seed, size=400 * 1024):
    """Return bytes shaped like a disk image: zeros, noise and text."""
    rng = random.Random(seed)
    text = b'Nov 20 kernel: eth0 link up, 10000 Mbps full duplex\n' * 400
    parts = [bytes(64 * 1024), rng.randbytes(64 * 1024)]
    while sum(map(len, parts)) < size:
        parts.append(text[:rng.randint(1, len(text))])
    return b''.join(parts)[:size]


def make_record(data, image_id=IMAGE_ID):
    return image_mod.ImageRecord(
        id=image_id, name='golden', disk_format='raw', size=len(data),
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest())


def decompress(algorithm, data):
    sink = io.BytesIO()
    writer = compression.decompressor(algorithm, sink)
    writer.write(data)
    writer.close()
    return sink.getvalue()


class HTTPServerTestCase(base.TestCase):
    """Starts an HTTPServer on 127.0.0.1 with a staged image."""

    compression = compression.ZSTD

    def setUp(self):
        super().setUp()
        self.register_plugin_opts(http_server.HTTPServer)
        self.root = os.path.join(self.tempdir, 'www')
        self.flags(group=http_server.GROUP, document_root=self.root,
                   bind_host='127.0.0.1', bind_port=0,
                   compression=self.compression)
        # Small chunks and writes, so that a test image spans several.
        self.useFixture(fixtures.MockPatchObject(http_server, 'CHUNK_SIZE',
                                                 64 * 1024))
        self.useFixture(fixtures.MockPatchObject(http_server, 'WRITE_SIZE',
                                                 4096))
        self.data = make_image_bytes(1)
        self.image = make_record(self.data)
        self.path = self.stage(self.data)
        self.server = self.start_server()

    def start_server(self):
        server = http_server.HTTPServer(self.conf)
        server.start()
        self.addCleanup(server.stop)
        return server

    def stage(self, data, name='staged'):
        path = os.path.join(self.tempdir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def serve(self, image=None, path=None):
        sources = self.server.serve(image or self.image, path or self.path)
        meta.build(image or self.image, sources, epoch=base.EPOCH)
        self.assertEqual(1, len(sources))
        return sources[0]

    def request(self, target, method='GET', headers=None):
        """Send one request; return ``(status, headers, body)``."""
        conn = http.client.HTTPConnection('127.0.0.1',
                                          self.server._server.port,
                                          timeout=10)
        self.addCleanup(conn.close)
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()

    def url_path(self, source):
        prefix = self.server.base_url
        self.assertTrue(source['url'].startswith(prefix + '/'))
        return source['url'][len(prefix):]

    def artifact_path(self, source):
        return os.path.join(self.root, *self.url_path(source).split('/'))


class TestServe(HTTPServerTestCase):

    def _check_round_trip(self, algorithm):
        self.flags(group=http_server.GROUP, compression=algorithm)
        source = self.serve()
        status, headers, body = self.request(self.url_path(source))
        self.assertEqual(200, status)
        self.assertEqual(algorithm, source['compression'])
        self.assertEqual(source['size'], len(body))
        self.assertEqual(str(len(body)), headers['Content-Length'])
        self.assertEqual(hashlib.sha256(body).hexdigest(),
                         source['hash_value'])
        self.assertEqual(self.data, decompress(algorithm, body))
        return source, body

    def test_zstd_round_trip(self):
        source, body = self._check_round_trip(compression.ZSTD)
        self.assertLess(len(body), len(self.data) // 2)
        hash16 = self.image.os_hash_value[:16]
        self.assertEqual('http://127.0.0.1:%d/%s/%s.img.zst'
                         % (self.server._server.port, IMAGE_ID, hash16),
                         source['url'])
        self.assertEqual('sha256', source['hash_algo'])

    def test_gzip_round_trip(self):
        source, _body = self._check_round_trip(compression.GZIP)
        self.assertTrue(source['url'].endswith('.img.gz'))

    def test_none_round_trip(self):
        source, _body = self._check_round_trip(compression.NONE)
        self.assertTrue(source['url'].endswith('.img'))

    def test_compression_level(self):
        self.flags(group=http_server.GROUP, compression_level=19)
        source = self.serve()
        status, _headers, body = self.request(self.url_path(source))
        self.assertEqual(self.data, decompress(compression.ZSTD, body))

    def test_unchanged_image_is_not_compressed_again(self):
        first = self.serve()
        before = os.stat(self.artifact_path(first))
        with mock.patch.object(http_server, 'compress_file') as compress_file:
            second = self.serve()
        compress_file.assert_not_called()
        self.assertEqual(first, second)
        after = os.stat(self.artifact_path(second))
        self.assertEqual((before.st_ino, before.st_mtime_ns),
                         (after.st_ino, after.st_mtime_ns))

    def test_artifact_without_record_is_written_again(self):
        first = self.serve()
        artifact = self.artifact_path(first)
        os.unlink(os.path.join(os.path.dirname(artifact),
                               '.%s.json' % os.path.basename(artifact)))
        self.assertEqual(first, self.serve())

    def test_changed_image_gets_a_new_url(self):
        old = self.serve()
        data = make_image_bytes(2)
        image = make_record(data)
        new = self.serve(image, self.stage(data, 'staged-2'))
        self.assertNotEqual(old['url'], new['url'])
        self.assertFalse(os.path.exists(self.artifact_path(old)))
        self.assertEqual(2, len(os.listdir(os.path.join(self.root,
                                                        IMAGE_ID))))
        self.assertEqual(404, self.request(self.url_path(old))[0])
        body = self.request(self.url_path(new))[2]
        self.assertEqual(data, decompress(compression.ZSTD, body))

    def test_changed_compression_replaces_artifact(self):
        old = self.serve()
        self.flags(group=http_server.GROUP, compression=compression.GZIP)
        new = self.serve()
        self.assertTrue(new['url'].endswith('.gz'))
        self.assertFalse(os.path.exists(self.artifact_path(old)))

    def test_failure_leaves_no_file(self):
        real = compression.compressor

        class Failing(object):
            def __init__(self, *args):
                self._real = real(*args)
                self._chunks = 0

            def process(self, data):
                self._chunks += 1
                if self._chunks == 3:
                    raise IOError('disk on fire')
                return self._real.process(data)

        with mock.patch.object(compression, 'compressor', Failing):
            error = self.assertRaises(exception.ServeFailed, self.serve)
        self.assertIn(IMAGE_ID, str(error))
        self.assertIn('disk on fire', str(error))
        self.assertEqual([], os.listdir(os.path.join(self.root, IMAGE_ID)))

    def test_write_failure_is_raised(self):
        out = mock.Mock()
        out.write.side_effect = OSError(28, 'No space left on device')
        self.assertRaises(OSError, http_server.compress_file, self.path, out,
                          compression.ZSTD)

    def test_image_without_hash_is_refused(self):
        image = image_mod.ImageRecord(id=IMAGE_ID, disk_format='raw')
        self.assertRaises(exception.ServeFailed, self.server.serve, image,
                          self.path)

    def test_hidden_image_id_is_refused(self):
        image = make_record(self.data, image_id='..')
        self.assertRaises(exception.ServeFailed, self.server.serve, image,
                          self.path)

    def test_start_removes_leftovers(self):
        self.serve()
        leftover = os.path.join(self.root, IMAGE_ID,
                                fileutils.TEMP_PREFIX + 'crash')
        open(leftover, 'wb').close()
        self.start_server()
        self.assertFalse(os.path.exists(leftover))


class TestRetire(HTTPServerTestCase):

    def test_retire_removes_the_image_directory(self):
        source = self.serve()
        other = make_record(make_image_bytes(2),
                            image_id='b1d2c3e4-0000-4000-8000-000000000002')
        other_path = self.stage(make_image_bytes(2), 'other')
        other_source = self.serve(other, other_path)
        self.server.retire(self.image.id)
        self.assertFalse(os.path.exists(os.path.join(self.root,
                                                     self.image.id)))
        self.assertEqual(404, self.request(self.url_path(source))[0])
        self.assertEqual(200, self.request(self.url_path(other_source))[0])
        # Idempotent; an id that was never a file name is ignored.
        self.server.retire(self.image.id)
        self.server.retire('../outside')
        self.assertTrue(os.path.isdir(self.root))

    def test_served_again_after_retiring(self):
        self.serve()
        self.server.retire(self.image.id)
        source = self.serve()
        self.assertEqual(200, self.request(self.url_path(source))[0])


class TestServerOptions(HTTPServerTestCase):

    def test_external_web_server(self):
        self.flags(group=http_server.GROUP, listen=False,
                   base_url='https://cdn.example.org/precache/')
        server = self.start_server()
        self.assertIsNone(server._server)
        source = server.serve(self.image, self.path)[0]
        self.assertTrue(source['url'].startswith(
            'https://cdn.example.org/precache/%s/' % IMAGE_ID))

    def test_no_listen_needs_base_url(self):
        self.flags(group=http_server.GROUP, listen=False)
        self.assertRaises(exception.ConfigurationError, http_server.HTTPServer,
                          self.conf)

    def test_gzip_level_range(self):
        self.flags(group=http_server.GROUP, compression=compression.GZIP,
                   compression_level=12)
        self.assertRaises(exception.ConfigurationError, http_server.HTTPServer,
                          self.conf)

    def test_base_url_of_wildcard_address(self):
        self.flags(group=http_server.GROUP, bind_host='0.0.0.0',
                   bind_port=8780)
        server = http_server.HTTPServer(self.conf)
        self.assertEqual('http://%s:8780' % socket.getfqdn(),
                         server.base_url)

    def test_base_url_of_ipv6_address(self):
        self.flags(group=http_server.GROUP, bind_host='::1', bind_port=8780)
        self.assertEqual('http://[::1]:8780',
                         http_server.HTTPServer(self.conf).base_url)

    def test_port_in_use(self):
        self.flags(group=http_server.GROUP, bind_port=self.server._server.port)
        self.assertRaises(exception.ConfigurationError,
                          http_server.HTTPServer(self.conf).start)

    def test_stop_closes_the_socket(self):
        port = self.server._server.port
        self.server.stop()
        self.assertRaises(ConnectionRefusedError, socket.create_connection,
                          ('127.0.0.1', port), 5)


class TestBuiltinWebServer(HTTPServerTestCase):

    def setUp(self):
        super().setUp()
        self.source = self.serve()
        self.target = self.url_path(self.source)
        with open(self.artifact_path(self.source), 'rb') as f:
            self.body = f.read()
        self.size = len(self.body)

    def get_range(self, value, **headers):
        headers['Range'] = value
        return self.request(self.target, headers=headers)

    def test_closed_range(self):
        status, headers, body = self.get_range('bytes=10-19')
        self.assertEqual(206, status)
        self.assertEqual('bytes 10-19/%d' % self.size,
                         headers['Content-Range'])
        self.assertEqual('10', headers['Content-Length'])
        self.assertEqual(self.body[10:20], body)

    def test_open_range(self):
        status, headers, body = self.get_range('bytes=%d-' % (self.size - 7))
        self.assertEqual(206, status)
        self.assertEqual(self.body[-7:], body)

    def test_suffix_range(self):
        status, headers, body = self.get_range('bytes=-5')
        self.assertEqual(206, status)
        self.assertEqual('bytes %d-%d/%d' % (self.size - 5, self.size - 1,
                                             self.size),
                         headers['Content-Range'])
        self.assertEqual(self.body[-5:], body)

    def test_range_past_the_end_is_clamped(self):
        status, headers, body = self.get_range('bytes=100-999999999')
        self.assertEqual(206, status)
        self.assertEqual(self.body[100:], body)

    def test_unsatisfiable_range(self):
        for value in ('bytes=%d-' % self.size, 'bytes=-0'):
            status, headers, body = self.get_range(value)
            self.assertEqual(416, status)
            self.assertEqual('bytes */%d' % self.size,
                             headers['Content-Range'])
            self.assertEqual(b'', body)

    def test_ignored_ranges(self):
        for value in ('bytes=0-1,5-6', 'bytes=9-3', 'items=0-1', 'bytes=-'):
            status, _headers, body = self.get_range(value)
            self.assertEqual(200, status)
            self.assertEqual(self.body, body)

    def test_if_range(self):
        etag = self.request(self.target, 'HEAD')[1]['ETag']
        self.assertEqual(206, self.get_range('bytes=0-0', **{
            'If-Range': etag})[0])
        self.assertEqual(200, self.get_range('bytes=0-0', **{
            'If-Range': '"other"'})[0])

    def test_head(self):
        status, headers, body = self.request(self.target, 'HEAD')
        self.assertEqual(200, status)
        self.assertEqual(str(self.size), headers['Content-Length'])
        self.assertEqual('bytes', headers['Accept-Ranges'])
        self.assertIsNotNone(headers['Last-Modified'])
        self.assertEqual(b'', body)

    def test_etag_and_if_none_match(self):
        status, headers, _body = self.request(self.target)
        etag = headers['ETag']
        self.assertTrue(etag.startswith('"'))
        status, headers, body = self.request(
            self.target, headers={'If-None-Match': 'W/"x", %s' % etag})
        self.assertEqual(304, status)
        self.assertEqual(etag, headers['ETag'])
        self.assertEqual(b'', body)
        status = self.request(self.target,
                              headers={'If-None-Match': '"x"'})[0]
        self.assertEqual(200, status)

    def test_if_modified_since(self):
        last_modified = self.request(self.target, 'HEAD')[1]['Last-Modified']
        for since, expected in ((last_modified, 304),
                                ('Thu, 01 Jan 2004 00:00:00 GMT', 200),
                                ('Thu, 01 Jan 2004 00:00:00 -0000', 200),
                                ('yesterday', 200)):
            status = self.request(
                self.target, headers={'If-Modified-Since': since})[0]
            self.assertEqual(expected, status, since)

    def test_cache_control(self):
        headers = self.request(self.target)[1]
        self.assertEqual('public, max-age=86400', headers['Cache-Control'])
        self.assertEqual('application/octet-stream', headers['Content-Type'])

    def test_cache_control_max_age_option(self):
        self.flags(group=http_server.GROUP, cache_max_age=60)
        self.server.stop()
        self.server = self.start_server()
        headers = self.request(self.target)[1]
        self.assertEqual('public, max-age=60', headers['Cache-Control'])

    def test_keep_alive(self):
        conn = http.client.HTTPConnection('127.0.0.1',
                                          self.server._server.port)
        self.addCleanup(conn.close)
        for _ in range(3):
            conn.request('GET', self.target, headers={'Range': 'bytes=0-3'})
            self.assertEqual(self.body[:4], conn.getresponse().read())

    def test_refused_paths(self):
        outside = self.stage(b'secret', 'outside')
        os.symlink(outside, os.path.join(self.root, 'link'))
        os.symlink(self.root, os.path.join(self.root, IMAGE_ID, 'up'))
        name = os.path.basename(self.target)
        hidden = os.path.join(self.root, IMAGE_ID, fileutils.TEMP_PREFIX + 'x')
        open(hidden, 'wb').close()
        for target in ('/', '/%s' % IMAGE_ID, '/%s/' % IMAGE_ID,
                       '/../outside', '/%2e%2e/outside',
                       '/%s/..%%2f..%%2foutside' % IMAGE_ID, '/link',
                       '/%s/up' % IMAGE_ID,
                       '/%s/.%s.json' % (IMAGE_ID, name),
                       '/%s/%s' % (IMAGE_ID, os.path.basename(hidden)),
                       '/%s/%s%%00' % (IMAGE_ID, name),
                       '/%s/missing' % IMAGE_ID):
            status, _headers, body = self.request(target)
            self.assertEqual(404, status, target)
            self.assertNotIn(b'secret', body)

    def test_temporary_files_are_hidden(self):
        self.assertTrue(httpd.is_hidden(fileutils.TEMP_PREFIX))

    def test_symlink_inside_root_is_followed(self):
        os.symlink(self.artifact_path(self.source),
                   os.path.join(self.root, 'latest'))
        self.assertEqual(self.body, self.request('/latest')[2])

    def test_connection_cap(self):
        self.flags(group=http_server.GROUP, threads=1)
        self.server.stop()
        self.server = self.start_server()
        first = http.client.HTTPConnection('127.0.0.1',
                                           self.server._server.port)
        first.request('HEAD', self.target)
        first.getresponse().read()
        second = socket.create_connection(
            ('127.0.0.1', self.server._server.port), timeout=0.3)
        self.addCleanup(second.close)
        second.sendall(('HEAD %s HTTP/1.0\r\n\r\n' % self.target).encode())
        self.assertRaises(socket.timeout, second.recv, 100)
        first.close()
        second.settimeout(10)
        self.assertTrue(second.recv(100).startswith(b'HTTP/1.1 200'))

    def restart(self, **options):
        self.flags(group=http_server.GROUP, **options)
        self.server.stop()
        self.server = self.start_server()

    def connect(self):
        sock = socket.create_connection(
            ('127.0.0.1', self.server._server.port), timeout=10)
        self.addCleanup(sock.close)
        return sock

    def trickle(self, stop):
        """Open a connection that sends its head a byte at a time."""
        sock = self.connect()
        head = ('GET %s HTTP/1.1\r\nHost: x\r\n' % self.target +
                'X-Slow: %s\r\n' % ('a' * 200)).encode()

        def send():
            for byte in head:
                if stop.wait(0.1):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return
        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        return sock

    def test_slow_clients_do_not_delay_a_normal_get(self):
        # As many trickling clients as threads: they hold no thread's
        # slot while their heads are not in.
        self.restart(threads=4, head_timeout=30)
        stop = threading.Event()
        self.addCleanup(stop.set)
        for _ in range(4):
            self.trickle(stop)
        time.sleep(0.3)
        started = time.monotonic()
        status, _, body = self.request(self.target)
        self.assertEqual((200, self.body), (status, body))
        self.assertLess(time.monotonic() - started, 2.0)

    def test_a_trickled_head_is_cut_off_at_its_deadline(self):
        # The deadline is for the whole head, not for each read.
        self.restart(head_timeout=1.0)
        stop = threading.Event()
        self.addCleanup(stop.set)
        started = time.monotonic()
        sock = self.trickle(stop)
        self.assertEqual(b'', sock.recv(100))
        self.assertLess(time.monotonic() - started, 3.0)

    def test_a_half_sent_request_is_closed_after_the_deadline(self):
        self.restart(head_timeout=0.5)
        sock = self.connect()
        sock.sendall(('GET %s HTTP/1.1\r\n' % self.target).encode())
        started = time.monotonic()
        self.assertEqual(b'', sock.recv(100))
        self.assertLess(time.monotonic() - started, 2.0)
        while self.server._server.connections('127.0.0.1'):
            self.assertLess(time.monotonic() - started, 5.0)
            time.sleep(0.01)

    def test_connections_per_address_are_capped(self):
        self.restart(max_connections_per_address=2, head_timeout=30)
        idle = [self.connect(), self.connect()]
        deadline = time.monotonic() + 5
        while self.server._server.connections('127.0.0.1') < 2:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        # A third connection is closed at once.
        third = self.connect()
        third.sendall(('HEAD %s HTTP/1.0\r\n\r\n' % self.target).encode())
        self.assertIn(third.recv(100), (b'', None))
        idle[0].close()
        while self.server._server.connections('127.0.0.1') > 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        self.assertEqual(200, self.request(self.target, method='HEAD')[0])

    def test_stop_cuts_open_connections(self):
        conn = http.client.HTTPConnection('127.0.0.1',
                                          self.server._server.port)
        self.addCleanup(conn.close)
        conn.request('HEAD', self.target)
        conn.getresponse().read()
        self.server.stop()
        conn.sock.settimeout(10)
        self.assertEqual(b'', conn.sock.recv(100))

    def test_query_string_is_ignored(self):
        self.assertEqual(200, self.request(self.target + '?x=1')[0])

    def test_other_methods_are_refused(self):
        self.assertEqual(501, self.request(self.target, 'PUT')[0])


class TestParseRange(base.TestCase):

    def test_parse_range(self):
        cases = [
            ('bytes=0-9', 100, (0, 9)),
            ('bytes=90-', 100, (90, 99)),
            ('bytes=-10', 100, (90, 99)),
            ('bytes=-200', 100, (0, 99)),
            ('BYTES = 5 - 6', 100, (5, 6)),
            ('bytes=50-500', 100, (50, 99)),
            ('bytes=100-', 100, httpd.UNSATISFIABLE),
            ('bytes=-0', 100, httpd.UNSATISFIABLE),
            ('bytes=-1', 0, httpd.UNSATISFIABLE),
            ('bytes=5-4', 100, None),
            ('bytes=0-1,3-4', 100, None),
            ('bytes=+1-2', 100, None),
            ('bytes=-', 100, None),
            (None, 100, None),
        ]
        for header, size, expected in cases:
            self.assertEqual(expected, httpd.parse_range(header, size),
                             header)
