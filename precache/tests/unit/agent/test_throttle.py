"""Tests of the agent's bandwidth cap."""

import os
import threading
import time

import fixtures

from precache.agent import download
from precache.agent import throttle
from precache.tests import base
from precache.tests.unit.agent import test_download


class FakeClock(object):
    """A clock that advances only when something sleeps."""

    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class TestTokenBucket(base.TestCase):

    def bucket(self, rate, **kwargs):
        self.clock = FakeClock()
        return throttle.TokenBucket(lambda: rate, clock=self.clock,
                                    sleep=self.clock.sleep, **kwargs)

    def test_no_cap(self):
        bucket = self.bucket(0)
        self.assertEqual(0, bucket.consume(10 ** 9))
        self.assertEqual([], self.clock.slept)

    def test_rate_is_kept_with_chunks_larger_than_the_burst(self):
        bucket = self.bucket(1000)
        for _ in range(10):
            bucket.consume(4000)
        self.assertAlmostEqual(40.0, self.clock.now - 100.0)

    def test_idle_time_saves_up_only_a_burst(self):
        bucket = self.bucket(1000, burst_seconds=0.5)
        bucket.consume(1000)
        self.clock.now += 3600
        self.assertEqual(0, bucket.consume(500))
        self.assertAlmostEqual(0.5, bucket.consume(500))

    def test_new_rate_applies_at_once(self):
        rate = [1000]
        clock = FakeClock()
        bucket = throttle.TokenBucket(lambda: rate[0], clock=clock,
                                      sleep=clock.sleep)
        bucket.consume(10000)
        rate[0] = 10000
        self.assertAlmostEqual(1.0, bucket.consume(10000))

    def test_threads_share_the_cap(self):
        rate = 4 * 1024 * 1024
        bucket = throttle.TokenBucket(lambda: rate)
        chunk, chunks, workers = 64 * 1024, 16, 3

        def consume():
            for _ in range(chunks):
                bucket.consume(chunk)

        threads = [threading.Thread(target=consume) for _ in range(workers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.8 * chunk * chunks * workers / rate)

    def test_shared_bucket_follows_the_option(self):
        self.useFixture(fixtures.MonkeyPatch(
            'precache.agent.throttle._shared', None))
        bucket = throttle.shared(self.conf)
        self.assertIs(bucket, throttle.shared(self.conf))
        self.flags(group='agent', bandwidth_limit=0)
        self.assertEqual(0, bucket.consume(10 ** 9))


class TestThrottledDownload(test_download.DownloadTestCase):

    def test_download_respects_bandwidth_limit(self):
        self.useFixture(fixtures.MonkeyPatch(
            'precache.agent.throttle._shared', None))
        limit = 4 * 1024 * 1024
        self.flags(group='agent', bandwidth_limit=limit)
        self.data = os.urandom(3 * 1024 * 1024)
        self.image = test_download._record(self.data)
        self.downloader = download.Downloader(self.conf)
        source = self.source(algorithm='none')
        started = time.monotonic()
        result = self.download(source)
        elapsed = time.monotonic() - started
        self.assertEqual(len(self.data), result['bytes_received'])
        self.assertGreaterEqual(elapsed, 0.8 * len(self.data) / limit)
