"""A hostile source against a real agent: downloads are bounded.

A real ``precache-agent`` process receives casts over a real RabbitMQ
whose sources point at the test's own small HTTP server, which sends a
decompression bomb or trickles its bytes. The agent must refuse the one
early and give up on the other within its bounds, and still land a valid
image sent to it meanwhile -- even behind a hundred trickling casts.
"""

import collections
import hashlib
import http.server
import os
import re
import threading
import time
import uuid

import fixtures
import oslo_messaging as messaging
from testtools import content

from precache.common import compression
from precache.common import rpc
from precache.common import verify
from precache.common import webserver
from precache.objects import image as image_mod
from precache.tests.functional import test_distribution

MiB = 1024 * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        body, trickle = self.server.files.get(self.path, (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if trickle is None:
            self.wfile.write(body)
            return
        self.close_connection = True
        try:
            for offset in range(len(body)):
                if self.server.closing.wait(trickle):
                    return
                self.wfile.write(body[offset:offset + 1])
                self.wfile.flush()
        except OSError:
            self.server.hung_up.set()

    def log_message(self, *args):
        pass


class HostileOrigin(fixtures.Fixture):
    """An HTTP server on 127.0.0.1 sending what the test tells it to."""

    def _setUp(self):
        self.server = webserver.BackgroundHTTPServer(('127.0.0.1', 0),
                                                     _Handler)
        self.server.files = {}
        self.server.closing = threading.Event()
        #: Set when a client hung up on a trickling response.
        self.server.hung_up = threading.Event()
        self.server.start('hostile-origin')
        self.addCleanup(self.server.stop)
        self.addCleanup(self.server.closing.set)

    def add(self, path, body, compression_name, trickle=None):
        """Serve ``body`` at ``path``; return its source dict."""
        self.server.files[path] = (body, trickle)
        return {'method': 'http', 'compression': compression_name,
                'url': 'http://127.0.0.1:%d%s' % (self.server.port, path),
                'size': len(body)}


def _zstd_of_zeros(size):
    """Return ``size`` zero bytes compressed with zstd (a few KiB)."""
    packer = compression.compressor(compression.ZSTD)
    zeros = bytes(MiB)
    parts = [packer.process(zeros) for _ in range(size // MiB)]
    return b''.join(parts) + packer.finish()


def _raw_record(data):
    """Return a record declaring ``data`` as a raw image."""
    return image_mod.ImageRecord(
        id=str(uuid.uuid4()), disk_format='raw', size=len(data),
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest())


class BoundedDownloadsTest(test_distribution.OneImageTestCase):

    def setUp(self):
        super().setUp()
        self.origin = self.useFixture(HostileOrigin())

    def cast_sources(self, agent, record, sources):
        self.cast(agent, record=record, sources=sources)

    def test_zstd_bomb_is_refused_early(self):
        agent, = self.start_agents(1)
        # 1 GiB of zeros in a few dozen KiB, declared as a 1 MiB image.
        bomb = _zstd_of_zeros(1024 * MiB)
        self.assertLess(len(bomb), 64 * 1024)
        record = _raw_record(bytes(MiB))
        source = self.origin.add('/bomb.zst', bomb, 'zstd')
        started = time.monotonic()
        self.cast_sources(agent, record, [source])
        report = self.endpoint.report_for(agent.host, record.id)
        seconds = time.monotonic() - started
        self.assertEqual('failed', report['status'], report)
        self.assertIn("the image's (decompressed) bytes passed the 1048576 "
                      "bytes declared", report['reason'])
        seen = int(re.search(r'\((\d+) seen\)', report['reason']).group(1))
        self.assertLessEqual(seen, 2 * MiB)
        self.assertLess(seconds, 15)
        self.assertNothingLanded(agent, record.id)
        self.addDetail('figures', content.text_content(
            'bomb refused after %.1f s, %d bytes seen' % (seconds, seen)))

    def test_trickling_source_fails_in_time_and_frees_its_slot(self):
        agent, = self.start_agents(1, options={'agent': {
            'max_concurrent_downloads': 1, 'min_download_rate': 4096,
            'min_rate_window': 2, 'download_deadline': 60}})
        data = bytes(MiB)
        slow = _raw_record(data)
        source = self.origin.add('/slow', data, 'none', trickle=0.2)
        started = time.monotonic()
        self.cast_sources(agent, slow, [source])
        # The only slot is taken by the trickle: the valid image waits.
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, slow.id)
        failed_after = time.monotonic() - started
        self.assertEqual('failed', report['status'], report)
        self.assertIn('below [agent] min_download_rate of 4096 bytes/s',
                      report['reason'])
        self.assertGreaterEqual(failed_after, 2)
        self.assertLess(failed_after, 10)
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          timeout=30)
        landed_after = time.monotonic() - started
        self.assertEqual('cached', report['status'], report)
        self.assertLanded(agent, self.image_id, self.raw)
        self.assertLess(landed_after, 30)
        self.assertNothingLanded(agent, slow.id)
        # The agent hung up on the trickling source.
        self.assertTrue(self.origin.server.hung_up.wait(10))
        self.addDetail('figures', content.text_content(
            'trickle failed after %.1f s, valid image landed after %.1f s'
            % (failed_after, landed_after)))

    def test_trickling_flood_does_not_delay_a_valid_cast(self):
        flood = 100
        agent, = self.start_agents(1, options={
            'DEFAULT': {'rpc_ping_enabled': 'true'},
            'agent': {'max_concurrent_downloads': 2,
                      'min_rate_window': 10, 'download_deadline': 60}})
        data = bytes(MiB)
        trickles = [_raw_record(data + b'%d' % n) for n in range(flood)]
        for record in trickles:
            source = self.origin.add('/trickle-%s' % record.id,
                                     data + b'x', 'none', trickle=2)
            source['size'] = record.size
            self.cast_sources(agent, record, [source])
        # Every trickling cast is received before the valid one.
        self.endpoint.wait_for(
            lambda e: len([r for r in e.reports
                           if r['host'] == agent.host]) >= flood - 20,
            what='busy answers to the flood')
        started = time.monotonic()
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          timeout=60)
        delay = time.monotonic() - started
        self.assertEqual('cached', report['status'], report)
        self.assertLess(delay, 10, agent.log_tail())
        # Landed whole; the trickles' temporary files still exist.
        landed = os.path.join(agent.base_path,
                              image_mod.nova_cache_name(self.image_id))
        self.assertEqual(verify.file_digest(self.raw),
                         verify.file_digest(landed))
        # The agent still answers calls while the trickles go on.
        client = rpc.get_client(messaging.Target(
            topic=self.messaging.agent_topic, server=agent.host))
        pinged = time.monotonic()
        client.prepare(timeout=10).call(rpc.get_context(),
                                        'oslo_rpc_server_ping')
        ping = time.monotonic() - pinged
        # Every trickling cast ends with a clear report, nothing lands.
        outcomes = collections.Counter()
        for record in trickles:
            report = self.endpoint.report_for(agent.host, record.id,
                                              timeout=180)
            self.assertEqual('failed', report['status'], report)
            if report['code'] == 'busy':
                outcomes['busy'] += 1
            elif 'max_parked_downloads' in report['reason']:
                outcomes['parking full'] += 1
            else:
                self.assertIn('below [agent] min_download_rate',
                              report['reason'])
                outcomes['too slow'] += 1
        for record in trickles:
            self.assertNothingLanded(agent, record.id)
        self.assertLanded(agent, self.image_id, self.raw)
        self.assertGreater(outcomes['too slow'], 0, outcomes)
        self.addDetail('figures', content.text_content(
            'valid cast behind %d trickling casts cached after %.1f s; '
            'ping answered in %.2f s; trickle outcomes %s'
            % (flood, delay, ping, dict(outcomes))))
