"""Tests of the agent's download path against a real local HTTP server."""

import configparser
import hashlib
import http.server
import importlib
import io
import os
import random
import re
import threading
import time
import urllib.parse

import fixtures

from precache.agent import download
from precache.agent import proxies
from precache.agent.sources import base as base_source
from precache.agent.sources import glance as glance_source
from precache.agent.sources import http as http_source
from precache.agent import sparse
from precache.agent import watchdog
from precache.common import compression
from precache.common import exception
from precache.common import streams
from precache.common import webserver
from precache.objects import image as image_mod
from precache.service.servers import httpd
from precache.tests import base

SETUP_CFG = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                         'setup.cfg')


def _sample_image(seed=1, mib=3):
    """Return image-like bytes: random data, text and runs of zeros."""
    rng = random.Random(seed)
    text = b' '.join(b'word%d' % rng.randrange(500) for _ in range(20000))
    parts = []
    for _ in range(mib * 4):
        kind = rng.randrange(3)
        if kind == 0:
            parts.append(rng.randbytes(256 * 1024))
        elif kind == 1:
            parts.append(bytes(256 * 1024))
        else:
            parts.append(text[:256 * 1024].ljust(256 * 1024, b'.'))
    return b''.join(parts) + b'tail'


def _record(data, image_id='img-1'):
    return image_mod.ImageRecord(
        id=image_id, disk_format='raw', size=len(data),
        os_hash_algo='sha512',
        os_hash_value=hashlib.sha512(data).hexdigest())


def _compress(data, algorithm):
    packer = compression.compressor(algorithm)
    return packer.process(data) + packer.finish()


class _Artifact(object):
    """A file the test server serves and how it misbehaves."""

    def __init__(self, data, ranges=True, cuts=0, etag=None, trickle=None,
                 location=None):
        self.data = data
        #: Where a request is redirected to (302), when set.
        self.location = location
        self.etag = etag or '"%s"' % hashlib.md5(data).hexdigest()
        #: Whether Range requests are honoured.
        self.ranges = ranges
        #: How many responses are cut off half-way (connection closed).
        self.cuts = cuts
        #: Seconds between two bytes of the body (None: all at once).
        self.trickle = trickle


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        server = self.server
        path = urllib.parse.urlsplit(self.path).path  # also when proxied
        with server.lock:
            server.requests.append((self.path, dict(self.headers)))
            artifact = server.artifacts.get(path)
            cut = bool(artifact and artifact.cuts)
            if cut:
                artifact.cuts -= 1
        if artifact is None:
            self.send_error(404)
            return
        if artifact.location:
            self.send_response(302)
            self.send_header('Location', artifact.location)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        start = self._range_start(artifact)
        body = artifact.data[start:]
        if start:
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (
                start, len(artifact.data) - 1, len(artifact.data)))
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('ETag', artifact.etag)
        self.end_headers()
        if cut:
            body = body[:len(body) // 2]
            self.close_connection = True
        if artifact.trickle is None:
            self.wfile.write(body)
            return
        self.close_connection = True
        try:
            for offset in range(len(body)):
                if server.closing.wait(artifact.trickle):
                    return
                self.wfile.write(body[offset:offset + 1])
                self.wfile.flush()
        except OSError:
            with server.lock:
                server.hung_up.append(time.monotonic())

    def _range_start(self, artifact):
        match = re.match(r'bytes=(\d+)-$', self.headers.get('Range', ''))
        if_range = self.headers.get('If-Range')
        if (not match or not artifact.ranges or
                (if_range and if_range != artifact.etag)):
            return 0
        return int(match.group(1))

    def log_message(self, *args):
        pass


class _Server(webserver.BackgroundHTTPServer):

    def handle_error(self, request, client_address):
        pass  # A client hanging up on a cut-off response is expected.


class HTTPServerFixture(fixtures.Fixture):
    """A threaded HTTP server on 127.0.0.1 serving :class:`_Artifact` s.

    It also serves proxy requests (absolute URIs) for any host name, so
    it can stand in for a cache proxy.
    """

    def _setUp(self):
        self.server = _Server(('127.0.0.1', 0), _Handler)
        self.server.artifacts = {}
        self.server.requests = []
        self.server.lock = threading.Lock()
        #: Set when the test ends: trickling responses stop.
        self.server.closing = threading.Event()
        #: When clients hung up on a trickling response.
        self.server.hung_up = []
        self.server.start('download-test-server')
        self.addCleanup(self.server.stop)
        self.addCleanup(self.server.closing.set)
        self.url = 'http://127.0.0.1:%d' % self.server.port

    def add(self, path, data, **kwargs):
        """Serve ``data`` at ``path``; return the artifact's URL."""
        self.server.artifacts[path] = _Artifact(data, **kwargs)
        return self.url + path

    @property
    def requests(self):
        return list(self.server.requests)


def _setup_cfg_plugin_class(namespace, name, option=None):
    """Import a plugin class as declared in setup.cfg's entry points.

    The unit tests do not need precache to be installed: this stands in
    for stevedore's entry point lookup (and checks setup.cfg).
    """
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    declared = dict(line.split('=', 1) for line in
                    parser['entry_points'][namespace].strip().splitlines())
    declared = {k.strip(): v.strip() for k, v in declared.items()}
    if name not in declared:
        raise exception.PluginNotFound(name=name, namespace=namespace,
                                       option=option or '-',
                                       available=', '.join(declared))
    module, _, attr = declared[name].partition(':')
    plugin_class = getattr(importlib.import_module(module), attr)
    plugin_class.name = name
    plugin_class.namespace = namespace
    return plugin_class


class DownloadTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch(
            'precache.common.plugin.load_plugin_class',
            _setup_cfg_plugin_class))
        self.flags(group='agent', proxies=[], direct_after_proxies=True,
                   download_retries=3, connect_timeout=2, read_timeout=5,
                   bandwidth_limit=0)
        self.httpd = self.useFixture(HTTPServerFixture())
        self.downloader = download.Downloader(self.conf)
        self.data = _sample_image()
        self.image = _record(self.data)
        self.path = os.path.join(self.tempdir, 'image.part')

    def source(self, data=None, path='/image.zst', algorithm='zstd',
               method='http', hash_value=None, size=None, **kwargs):
        """Serve ``data`` compressed; return its source dict."""
        artifact = _compress(self.data if data is None else data, algorithm)
        url = self.httpd.add(path, artifact, **kwargs)
        return {'method': method, 'url': url, 'compression': algorithm,
                'size': len(artifact) if size is None else size,
                'hash_algo': 'sha256',
                'hash_value': hash_value or
                hashlib.sha256(artifact).hexdigest()}

    def download(self, *sources):
        with open(self.path, 'wb') as fileobj:
            result = self.downloader.download(self.image, list(sources),
                                              fileobj)
        with open(self.path, 'rb') as fileobj:
            self.assertEqual(self.data, fileobj.read())
        return result

    def assertFails(self, *sources):
        with open(self.path, 'wb') as fileobj:
            return self.assertRaises(exception.AllSourcesFailed,
                                     self.downloader.download, self.image,
                                     list(sources), fileobj)


class TestCompressions(DownloadTestCase):

    def test_each_compression_round_trips(self):
        for algorithm in compression.ALGORITHMS:
            source = self.source(path='/image.' + algorithm,
                                 algorithm=algorithm)
            result = self.download(source)
            self.assertEqual('http', result['method'])
            self.assertEqual(source['size'], result['bytes_received'])
            self.assertEqual(len(self.data), result['bytes_written'])
            self.assertEqual(source['url'], result['locator'])
            self.assertGreaterEqual(result['seconds'], 0)

    def test_previous_attempt_is_discarded(self):
        with open(self.path, 'wb') as fileobj:
            fileobj.write(b'x' * (len(self.data) + 12345))
            self.downloader.download(self.image, [self.source()], fileobj)
        with open(self.path, 'rb') as fileobj:
            self.assertEqual(self.data, fileobj.read())

    def test_zero_runs_become_holes(self):
        self.data = (bytes(2 << 20) + b'data' * 16384 + bytes(3 << 20))
        self.image = _record(self.data)
        self.download(self.source(algorithm='none'))
        stat = os.stat(self.path)
        self.assertEqual(len(self.data), stat.st_size)
        self.assertLess(stat.st_blocks * 512, stat.st_size // 2)

    def test_sparse_result_of_a_mixed_image(self):
        self.download(self.source())
        stat = os.stat(self.path)
        self.assertLess(stat.st_blocks * 512, stat.st_size)


class TestSourceFailover(DownloadTestCase):

    def md5_only(self):
        """Make the image one whose sole hash is Glance's md5 checksum."""
        self.image = image_mod.ImageRecord(
            id=self.image.id, disk_format='raw', size=len(self.data),
            checksum=hashlib.md5(self.data).hexdigest())

    def test_wrong_transfer_hash_uses_next_source(self):
        self.md5_only()
        bad = self.source(path='/bad.zst', hash_value='ab' * 32)
        good = self.source(path='/good.zst')
        result = self.download(bad, good)
        self.assertEqual(good['url'], result['locator'])

    def test_transfer_hash_is_not_checked_beside_a_strong_image_hash(self):
        # The image's sha512 alone decides: the artifact is not hashed.
        source = self.source(hash_value='ab' * 32)
        self.assertEqual(source['url'], self.download(source)['locator'])

    def test_wrong_bytes_with_a_strong_image_hash_use_next_source(self):
        artifact = _compress(self.data[:-1] + b'X', 'zstd')
        bad = dict(self.source(path='/bad.zst'),
                   url=self.httpd.add('/forged.zst', artifact),
                   size=len(artifact),
                   hash_value=hashlib.sha256(artifact).hexdigest())
        good = self.source(path='/good.zst')
        self.assertEqual(good['url'], self.download(bad, good)['locator'])

    def test_wrong_transfer_size_uses_next_source(self):
        bad = self.source(path='/bad.zst', size=1)
        good = self.source(path='/good.zst')
        self.assertEqual(good['url'], self.download(bad, good)['locator'])

    def test_wrong_image_bytes_use_next_source(self):
        bad = self.source(data=self.data[:-1] + b'X', path='/bad.zst')
        good = self.source(path='/good.zst')
        self.assertEqual(good['url'], self.download(bad, good)['locator'])

    def test_corrupt_stream_uses_next_source(self):
        for algorithm in ('zstd', 'gzip'):
            artifact = bytearray(_compress(self.data, algorithm))
            artifact[len(artifact) // 2:len(artifact) // 2 + 64] = bytes(64)
            url = self.httpd.add('/corrupt', bytes(artifact))
            corrupt = {'method': 'http', 'url': url,
                       'compression': algorithm}
            good = self.source(path='/good', algorithm=algorithm)
            self.assertEqual(good['url'],
                             self.download(corrupt, good)['locator'])

    def test_unknown_method_is_skipped(self):
        result = self.download({'method': 'carrier-pigeon'}, self.source())
        self.assertEqual('http', result['method'])

    def test_all_sources_fail(self):
        self.md5_only()
        missing = {'method': 'http', 'url': self.httpd.url + '/missing',
                   'compression': 'zstd'}
        bad = self.source(path='/bad.zst', hash_value='ab' * 32)
        exc = self.assertFails({'method': 'carrier-pigeon'}, missing, bad)
        message = str(exc)
        self.assertIn('source 1 (carrier-pigeon)', message)
        self.assertIn('source 2 (http %s/missing)' % self.httpd.url,
                      message)
        self.assertIn('HTTP 404', message)
        self.assertIn('source 3 (http %s)' % bad['url'], message)
        self.assertIn('sha256 of the transferred bytes', message)

    def test_image_without_hash_fails_at_once(self):
        self.image = image_mod.ImageRecord(id='x', disk_format='raw',
                                           size=1)
        with open(self.path, 'wb') as fileobj:
            self.assertRaises(exception.NoVerifiableHash,
                              self.downloader.download, self.image,
                              [self.source()], fileobj)

    def test_write_error_is_not_a_source_error(self):
        class Full(io.BytesIO):
            def write(self, data):
                raise OSError(28, 'No space left on device')

        self.assertRaises(OSError, self.downloader.download, self.image,
                          [self.source(), self.source(path='/2')], Full())

    def test_truncated_gzip_uses_next_source(self):
        artifact = _compress(self.data, 'gzip')
        url = self.httpd.add('/truncated', artifact[:len(artifact) // 2])
        truncated = {'method': 'http', 'url': url, 'compression': 'gzip'}
        good = self.source(path='/good', algorithm='gzip')
        self.assertEqual(good['url'],
                         self.download(truncated, good)['locator'])

    def test_host_failure_is_not_retried_on_next_source(self):
        image = self.image

        class Full(io.BytesIO):
            def write(self, data):
                raise exception.InsufficientDiskSpace(
                    path='/cache', image_id=image.id, needed=1, reserve=0,
                    free=0)

        first = self.source(path='/1')
        second = self.source(path='/2')
        self.assertRaises(exception.InsufficientDiskSpace,
                          self.downloader.download, self.image,
                          [first, second], Full())
        self.assertNotIn('/2', [path for path, _headers in
                                self.httpd.requests])

    def test_missing_source_plugin_names_what_to_install(self):
        with fixtures.FakeLogger() as logger:
            self.download({'method': 'carrier-pigeon'}, self.source())
        self.assertIn('no source plugin of that name is installed on this '
                      'host', logger.output)
        self.assertNotIn('[service] server', logger.output)


class TestCancel(DownloadTestCase):
    """A stopping agent abandons its download at once."""

    def test_cancel_during_a_stalled_read_interrupts_the_download(self):
        cancel = threading.Event()
        image = self.image
        reading = threading.Event()

        class Stalled(base_source.ImageSource):
            method = 'stalled'

            def locator(self, source):
                return 'nowhere'

            def iter_chunks(self, image, source):
                reading.set()
                yield b'x' * 10
                threading.Event().wait(30)  # a read that never returns
                yield b'never'

        self.downloader._plugins['stalled'] = Stalled(self.conf)
        second = self.source(path='/second')
        timer = threading.Timer(0.3, cancel.set)
        timer.start()
        self.addCleanup(timer.cancel)
        with open(self.path, 'wb') as fileobj:
            started = time.monotonic()
            error = self.assertRaises(
                exception.Interrupted, self.downloader.download, image,
                [{'method': 'stalled'}, second], fileobj, cancel=cancel)
        self.assertLess(time.monotonic() - started, 5)
        self.assertTrue(reading.is_set())
        self.assertEqual('interrupted', error.code)
        # The next source is not tried: the agent is stopping.
        self.assertNotIn('/second', [path for path, _headers in
                                     self.httpd.requests])

    def test_cancelled_before_the_first_source_downloads_nothing(self):
        cancel = threading.Event()
        cancel.set()
        with open(self.path, 'wb') as fileobj:
            self.assertRaises(exception.Interrupted,
                              self.downloader.download, self.image,
                              [self.source()], fileobj, cancel=cancel)
        self.assertEqual([], self.httpd.requests)


class TestSizeBounds(DownloadTestCase):
    """A source sending more than declared is cut off while it streams."""

    def bomb(self, pattern=b'\0', declared=1 << 20, mib=64):
        """Serve ``mib`` MiB of ``pattern`` as zstd, declared ``declared``.

        :returns: the source and the failure.
        """
        self.data = (pattern * (1 << 20))[:declared]
        self.image = _record(self.data)
        source = self.source(data=pattern * (mib << 20), path='/bomb.zst')
        self.assertLess(source['size'], 64 * 1024)  # it is a bomb
        started = time.monotonic()
        exc = self.assertFails(source)
        self.seconds = time.monotonic() - started
        return source, exc

    def test_zstd_bomb_stops_at_the_declared_size(self):
        _source, exc = self.bomb()
        message = str(exc)
        self.assertIn("the image's (decompressed) bytes passed the 1048576 "
                      "bytes declared", message)
        seen = int(re.search(r'\((\d+) seen\)', message).group(1))
        self.assertLessEqual(seen, (1 << 20) + download.WRITE_SIZE)
        # Nothing past the declared size was written, and it was quick.
        self.assertLessEqual(os.stat(self.path).st_size, 1 << 20)
        self.assertLess(self.seconds, 5)

    def test_bomb_of_data_writes_at_most_the_declared_size(self):
        # Not zeros: these bytes are really written, not left as holes.
        _source, exc = self.bomb(pattern=b'precache', declared=3 << 20)
        self.assertIn('passed the 3145728 bytes declared', str(exc))
        st = os.stat(self.path)
        self.assertLessEqual(st.st_size, 3 << 20)
        self.assertLessEqual(st.st_blocks * 512,
                             (3 << 20) + sparse.BLOCK_SIZE)

    def test_bomb_then_a_good_source(self):
        self.data = bytes(1 << 20)
        self.image = _record(self.data)
        bomb = self.source(data=bytes(64 << 20), path='/bomb.zst')
        good = self.source(path='/good.zst')
        self.assertEqual(good['url'], self.download(bomb, good)['locator'])

    def test_stream_longer_than_declared_stops_at_once(self):
        # 16 MiB that do not compress, declared as one: the transfer ends
        # at the first read past the declared size.
        self.data = random.Random(3).randbytes(16 << 20)
        self.image = _record(self.data)
        source = self.source(algorithm='none', size=1 << 20,
                             hash_value='ab' * 32)
        exc = self.assertFails(source)
        message = str(exc)
        self.assertIn('the bytes received from the source passed the '
                      '1048576 bytes declared', message)
        seen = int(re.search(r'\((\d+) seen\)', message).group(1))
        self.assertLessEqual(seen, (1 << 20) + http_source.CHUNK_SIZE)
        self.assertLessEqual(os.stat(self.path).st_size, 1 << 20)

    def test_sparse_writer_refuses_to_pass_its_limit(self):
        with open(self.path, 'wb') as out:
            writer = sparse.SparseWriter(out, limit=10)
            writer.write(b'0123456789')
            error = self.assertRaises(sparse.LimitExceeded, writer.write,
                                      b'x')
            self.assertEqual((10, 11), (error.limit, error.size))
            self.assertEqual(10, writer.close())


class TestTimeBounds(DownloadTestCase):
    """A source too slow fails within its bound and frees the download."""

    def trickle(self, **flags):
        """Try a source sending a byte every 50 ms, then a good one.

        :returns: the result, the seconds until the trickling source
            failed and the warning logged.
        """
        self.flags(group='agent', **flags)
        slow = self.source(path='/slow.zst', trickle=0.05)
        good = self.source(path='/good.zst')
        started = time.monotonic()
        with fixtures.FakeLogger() as logger:
            result = self.download(slow, good)
        gave_up = next(when for path, when in self.request_times()
                       if path == '/good.zst') - started
        return result, gave_up, logger.output

    def request_times(self):
        return [(path, when) for (path, _headers), when in
                zip(self.httpd.requests, self.httpd.server.request_times)]

    def setUp(self):
        super().setUp()
        self.httpd.server.request_times = []
        real_get = _Handler.do_GET

        def timed_get(handler):
            handler.server.request_times.append(time.monotonic())
            real_get(handler)

        self.useFixture(fixtures.MockPatchObject(_Handler, 'do_GET',
                                                 timed_get))

    def test_trickle_below_the_minimum_rate_fails(self):
        result, gave_up, log = self.trickle(
            min_download_rate=1024, min_rate_window=1, download_deadline=60)
        self.assertEqual('/good.zst', result['locator'][-9:])
        self.assertGreaterEqual(gave_up, 1)
        self.assertLess(gave_up, 2.5)
        self.assertRegex(log, r'delivered \d+ bytes in 1\.\d s \(\d+ '
                              r'bytes/s\), below \[agent\] '
                              r'min_download_rate of 1024 bytes/s')
        # The abandoned transfer is closed soon, not left reading.
        deadline = time.monotonic() + 5
        while not self.httpd.server.hung_up and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.httpd.server.hung_up)

    def test_trickle_past_the_deadline_fails(self):
        result, gave_up, log = self.trickle(
            min_download_rate=0, download_deadline=1)
        self.assertEqual('/good.zst', result['locator'][-9:])
        self.assertGreaterEqual(gave_up, 1)
        self.assertLess(gave_up, 2.5)
        self.assertIn('did not end within [agent] download_deadline (1 s)',
                      log)

    def test_bandwidth_cap_waits_do_not_count_against_the_rate(self):
        # Capped at 2 MiB/s, a 3 MiB image takes over a second: the
        # source itself is fast, so it must not fail a 1 s window asking
        # for 4 MiB/s.
        self.data = random.Random(5).randbytes(3 << 20)
        self.image = _record(self.data)
        self.flags(group='agent', bandwidth_limit=2 << 20,
                   min_download_rate=4 << 20, min_rate_window=1)
        self.useFixture(fixtures.MonkeyPatch(
            'precache.agent.throttle._shared', None))
        self.downloader = download.Downloader(self.conf)
        started = time.monotonic()
        self.download(self.source(algorithm='none'))
        self.assertGreater(time.monotonic() - started, 1)


class TestReceivedAhead(DownloadTestCase):
    """A source that receives out of order is judged on what arrives."""

    def swarm_like(self, receives_ahead):
        """A plugin that yields nothing for 2.5 s while bytes pour in."""
        artifact = _compress(self.data, 'none')

        class OutOfOrder(base_source.ImageSource):
            method = 'out-of-order'

            def iter_chunks(self, image, source, progress=None):
                for step in range(1, 11):
                    time.sleep(0.25)
                    if progress is not None:
                        progress(step * 1024 * 1024)
                yield artifact

        plugin = OutOfOrder(self.conf)
        plugin.receives_ahead = receives_ahead
        self.downloader._plugins['out-of-order'] = plugin
        return {'method': 'out-of-order', 'compression': 'none',
                'size': len(artifact)}

    def test_bytes_received_ahead_keep_the_download_going(self):
        self.flags(group='agent', min_download_rate=64 * 1024,
                   min_rate_window=1, max_parked_downloads=0)
        result = self.download(self.swarm_like(receives_ahead=True))
        self.assertEqual('out-of-order', result['method'])

    def test_without_them_the_in_order_prefix_alone_counts(self):
        self.flags(group='agent', min_download_rate=64 * 1024,
                   min_rate_window=1, max_parked_downloads=0)
        error = self.assertFails(self.swarm_like(receives_ahead=False))
        self.assertIn('below [agent] min_download_rate', str(error))


class TestWatchdog(base.TestCase):

    def setUp(self):
        super().setUp()
        self.now = 100.0

    def make(self, deadline=0, min_rate=0, window=10, stopping=None):
        return watchdog.Watchdog(deadline, min_rate, window, stopping,
                                 clock=lambda: self.now)

    def test_deadline(self):
        dog = self.make(deadline=30)
        self.now += 29.9
        self.assertFalse(dog.is_set())
        self.now += 0.1
        self.assertTrue(dog.is_set())
        self.assertIn('download_deadline (30 s)', dog.reason)

    def test_rate_is_checked_per_window(self):
        dog = self.make(min_rate=100, window=10)
        dog.count(1000)
        self.now += 10
        self.assertFalse(dog.is_set())  # 100 bytes/s: enough
        dog.count(999)
        self.now += 5
        self.assertFalse(dog.is_set())  # the window is not over
        self.now += 5
        self.assertTrue(dog.is_set())
        self.assertIn('delivered 999 bytes in 10.0 s (100 bytes/s), below '
                      '[agent] min_download_rate of 100 bytes/s', dog.reason)

    def test_bytes_received_ahead_of_the_stream_count(self):
        # A swarm: pieces pour in out of order while the in-order prefix
        # waits for one piece.
        dog = self.make(min_rate=100, window=10)
        dog.ahead(5000)
        self.now += 10
        self.assertFalse(dog.is_set())
        dog.count(5000)  # the prefix catches up: nothing new delivered
        dog.ahead(5000)
        self.now += 10
        self.assertTrue(dog.is_set())
        self.assertIn('delivered 0 bytes in 10.0 s', dog.reason)
        self.assertEqual(5000, dog.delivered)

    def test_paused_time_does_not_count(self):
        dog = self.make(min_rate=100, window=10)
        with dog.paused():
            self.now += 60
            self.assertFalse(dog.is_set())
        dog.count(1000)
        self.now += 10
        self.assertFalse(dog.is_set())

    def test_stopping_has_no_reason(self):
        stopping = threading.Event()
        dog = self.make(deadline=1, stopping=stopping)
        stopping.set()
        self.assertTrue(dog.is_set())
        self.assertIsNone(dog.reason)

    def test_no_bounds(self):
        dog = self.make()
        self.now += 1e9
        self.assertFalse(dog.is_set())


class TestResume(DownloadTestCase):

    def test_broken_transfer_resumes_with_range(self):
        source = self.source(cuts=2)
        result = self.download(source)
        self.assertEqual(source['size'], result['bytes_received'])
        requests = self.httpd.requests
        self.assertEqual(3, len(requests))
        self.assertNotIn('Range', requests[0][1])
        etag = self.httpd.server.artifacts['/image.zst'].etag
        for _path, headers in requests[1:]:
            self.assertRegex(headers['Range'], r'^bytes=[1-9]\d*-$')
            self.assertEqual(etag, headers['If-Range'])

    def test_resumes_are_limited(self):
        self.flags(group='agent', download_retries=1)
        exc = self.assertFails(self.source(cuts=5))
        self.assertIn('gave up after 2 broken attempt(s)', str(exc))
        self.assertEqual(2, len(self.httpd.requests))

    def test_no_range_support_uses_next_source(self):
        first = self.source(path='/first.zst', cuts=1, ranges=False)
        second = self.source(path='/second.zst')
        result = self.download(first, second)
        self.assertEqual(second['url'], result['locator'])
        paths = [path for path, _headers in self.httpd.requests]
        self.assertEqual(['/first.zst', '/first.zst', '/second.zst'], paths)


class TestProxies(DownloadTestCase):

    def setUp(self):
        super().setUp()
        self.dead = 'http://127.0.0.1:%d' % self.refusing_port()
        self.live = self.httpd.url
        # A host name for which the dead proxy ranks first.
        host = next('cmp-%d' % n for n in range(1000)
                    if proxies.order_proxies('cmp-%d' % n,
                                             [self.dead, self.live])[0] ==
                    self.dead)
        self.flags(host=host)

    def test_dead_proxy_then_next_proxy(self):
        self.flags(group='agent', proxies=[self.live, self.dead],
                   direct_after_proxies=False)
        source = self.source()
        source['url'] = 'http://origin.invalid/image.zst'
        with fixtures.FakeLogger() as logger:
            result = self.download(source)
        self.assertEqual(source['url'], result['locator'])
        self.assertEqual([source['url']],
                         [path for path, _headers in self.httpd.requests])
        self.assertIn('via %s failed' % self.dead, logger.output)

    def test_dead_proxy_then_origin(self):
        self.flags(group='agent', proxies=[self.dead],
                   direct_after_proxies=True)
        self.download(self.source())
        self.assertEqual(['/image.zst'],
                         [path for path, _headers in self.httpd.requests])

    def test_no_origin_after_proxies(self):
        self.flags(group='agent', proxies=[self.dead],
                   direct_after_proxies=False)
        exc = self.assertFails(self.source())
        self.assertIn('via %s: ProxyError: ' % self.dead, str(exc))
        self.assertIn('Connection refused', str(exc))
        self.assertEqual([], self.httpd.requests)

    def test_proxy_credentials_are_not_logged(self):
        dead = self.dead.replace('//', '//user:secret@')
        self.flags(group='agent', proxies=[dead],
                   direct_after_proxies=False)
        with fixtures.FakeLogger() as logger:
            exc = self.assertFails(self.source())
        self.assertNotIn('secret', str(exc))
        self.assertNotIn('secret', logger.output)

    def test_swift_goes_direct(self):
        self.flags(group='agent', proxies=[self.dead],
                   direct_after_proxies=False)
        source = self.source(method='swift', cuts=1)
        source['url'] += '?temp_url_sig=secret&temp_url_expires=1'
        with fixtures.FakeLogger() as logger:
            result = self.download(source)
        self.assertEqual('swift', result['method'])
        self.assertIn('resuming', logger.output)
        self.assertNotIn('secret', logger.output)
        self.assertNotIn('secret', result['locator'])


class TestPrecacheHTTPD(DownloadTestCase):
    """Downloads from precache's own web server (the http origin)."""

    def setUp(self):
        super().setUp()
        root = os.path.join(self.tempdir, 'www')
        os.mkdir(root)
        self.artifact = _compress(self.data, 'zstd')
        path = os.path.join(root, 'image.zst')
        with open(path, 'wb') as out:
            out.write(self.artifact)
        self.etag = httpd._Validators(os.stat(path)).etag
        server = httpd.Server(('127.0.0.1', 0), root, 60, 8)
        server.start('download-test-origin')
        self.addCleanup(server.stop)
        self.origin = {'method': 'http', 'compression': 'zstd',
                       'url': 'http://127.0.0.1:%d/image.zst' % server.port,
                       'size': len(self.artifact),
                       'hash_value': hashlib.sha256(
                           self.artifact).hexdigest()}

    def test_download(self):
        result = self.download(self.origin)
        self.assertEqual(len(self.artifact), result['bytes_received'])

    def test_origin_resumes_where_the_proxy_broke(self):
        # The proxy passes the origin's ETag on, cuts every transfer and
        # ignores Range: the origin must serve the rest, and only it.
        self.httpd.add('/image.zst', self.artifact, cuts=9, ranges=False,
                       etag=self.etag)
        self.flags(group='agent', proxies=[self.httpd.url],
                   direct_after_proxies=True, download_retries=0)
        with fixtures.FakeLogger() as logger:
            result = self.download(self.origin)
        self.assertEqual(len(self.artifact), result['bytes_received'])
        self.assertEqual(1, len(self.httpd.requests))
        self.assertIn('via %s failed: gave up after 1 broken attempt(s)'
                      % self.httpd.url, logger.output)


class TestHTTPRoutes(base.TestCase):

    def test_routes_follow_rendezvous_order(self):
        self.flags(host='cmp-7')
        names = ['http://p%d:3128' % n for n in range(4)]
        self.flags(group='agent', proxies=names, direct_after_proxies=True)
        routes = http_source.HTTPSource(self.conf).routes()
        self.assertEqual(proxies.order_proxies('cmp-7', names) + [None],
                         [proxy for proxy, _mapping in routes])
        self.assertEqual({'http': routes[0][0], 'https': routes[0][0]},
                         routes[0][1])

    def test_direct_without_proxies(self):
        self.flags(group='agent', proxies=[], direct_after_proxies=False)
        routes = http_source.HTTPSource(self.conf).routes()
        self.assertEqual([(None, {})], routes)


class _FakeGlance(object):
    def __init__(self, data):
        self.images = self
        self._data = data

    def data(self, image_id, do_checksum=True):
        return iter([self._data[:1000], self._data[1000:]])


class TestGlanceSource(base.TestCase):

    def test_streams_image_data(self):
        data = _sample_image(mib=1)
        image = _record(data)
        source = glance_source.GlanceSource(self.conf,
                                            client=_FakeGlance(data))
        chunks = list(source.stream(image, {'method': 'glance'}))
        self.assertEqual(data, b''.join(chunks))
        self.assertEqual('Glance', source.locator({'method': 'glance'}))


class TestSparseWriter(base.TestCase):

    def write(self, *chunks, block_size=8):
        with open(os.path.join(self.tempdir, 'out'), 'w+b') as out:
            writer = sparse.SparseWriter(out, block_size=block_size)
            for chunk in chunks:
                writer.write(chunk)
            self.assertEqual(sum(map(len, chunks)), writer.close())
            out.seek(0)
            self.assertEqual(b''.join(chunks), out.read())

    def test_blocks_follow_file_offsets(self):
        # Chunks of odd sizes: the zero check must still see whole,
        # aligned blocks and every byte must land where it belongs.
        data = b'abc' + bytes(21) + b'defgh' + bytes(16) + b'x'
        for size in (1, 3, 5, 8, 13, len(data)):
            self.write(*[data[i:i + size]
                         for i in range(0, len(data), size)])

    def test_trailing_zeros_extend_the_file(self):
        self.write(b'abc', bytes(100), bytes(28))
        self.write(bytes(100), memoryview(bytes(28)))

    def test_zero_blocks_are_not_written(self):
        writes = []

        class Recorder(io.BytesIO):
            def write(self, data):
                writes.append(bytes(data))
                return super().write(data)

        writer = sparse.SparseWriter(Recorder(), block_size=4)
        writer.write(b'ab\0\0' + bytes(8) + b'cdef' + b'gh' + bytes(6))
        self.assertEqual(24, writer.close())
        self.assertEqual([b'ab\0\0', b'cdefgh\0\0'], writes)


class TestPipeline(base.TestCase):

    def test_prefetcher_passes_items_and_errors_in_order(self):
        def produce():
            yield from (b'a', b'b')
            raise ValueError('boom')

        seen = []
        with streams.Prefetcher(produce()) as items:
            error = self.assertRaises(ValueError, lambda: [
                seen.append(item) for item in items])
        self.assertEqual([b'a', b'b'], seen)
        self.assertEqual('boom', str(error))

    def test_prefetcher_stops_and_closes_when_the_consumer_fails(self):
        closed = threading.Event()

        def produce():
            try:
                while True:
                    yield b'x'
            finally:
                closed.set()

        def consume():
            with streams.Prefetcher(produce(), depth=2) as items:
                for _item in items:
                    raise RuntimeError('consumer failed')

        self.assertRaises(RuntimeError, consume)
        self.assertTrue(closed.wait(10))

    def test_threaded_sink_writes_in_order_and_reports_errors(self):
        written = []
        sink = streams.ThreadedSink(written.append)
        for n in range(100):
            sink.write(n)
        sink.close()
        self.assertEqual(list(range(100)), written)

        def fail(data):
            raise OSError('disk full')

        sink = streams.ThreadedSink(fail, depth=1)
        sink.write(b'x')
        self.assertRaises(OSError, sink.close)
