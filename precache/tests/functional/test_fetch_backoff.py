"""An image precache-service cannot fetch, as an operator meets it.

A real precache-service process over a real RabbitMQ lists an image
(``directory`` lister) whose bytes the ``file`` fetcher reads from another
file: every fetch fails its sha512 check, like corrupt bytes in Glance.
The service runs every second but tries the image again only after its
backoff; ``precache watch`` exits 4 at once naming the reason; ``precache
images`` shows the count and the next try; ``precache cache`` and a new
version of the image are tried at once.
"""

import json
import os
import subprocess
import sys
import time

from precache.tests import fixtures as servers
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_distribution

IMAGE_ID = 'corrupt-golden-1'
BACKOFF = 30


class FetchBackoffTest(test_distribution.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.images_dir = os.path.join(self.tempdir, 'images')
        os.makedirs(self.images_dir)
        self.listed = os.path.join(self.images_dir, IMAGE_ID)
        with open(self.listed, 'wb') as f:
            f.write(b'golden bytes ' * 1000)
        # What the fetcher reads: the same size, other bytes.
        corrupt = os.path.join(self.tempdir, 'corrupt')
        with open(corrupt, 'wb') as f:
            f.write(b'rotten bytes ' * 1000)
        self.service = self.useFixture(control_plane.ServiceProcessFixture(
            self.messaging, self.tempdir, self.images_dir, options={
                'service': {'interval': 1,
                            'image_retry_backoff': BACKOFF,
                            'image_retry_backoff_max': BACKOFF},
                'file_fetcher': {'image_paths': '%s:%s' % (IMAGE_ID,
                                                           corrupt)}}))
        self.cli_config = os.path.join(self.tempdir, 'cli.conf')
        control_plane.write_config(self.cli_config, {
            'DEFAULT': {'transport_url': self.messaging.transport_url},
            'oslo_messaging_rabbit': {
                'hostname': 'cli-' + self.messaging.suffix},
            'rpc': {'service_topic': self.messaging.service_topic,
                    'agent_topic': self.messaging.agent_topic}})

    def precache(self, *args, timeout=120):
        """Run the ``precache`` CLI; return (exit status, stdout, stderr)."""
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cli.app', '--config-file',
             self.cli_config, '--rpc-timeout', '20'] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, text=True)
        return result.returncode, result.stdout, result.stderr

    def log(self):
        return servers.log_tail(self.service.log_file, 1000000)

    def count(self, text):
        return self.log().count(text)

    def wait_for_log(self, text, count=1, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(text) >= count:
                return
            time.sleep(0.2)
        self.fail('%r not logged %d time(s); log:\n%s'
                  % (text, count, self.service.log_tail(80)))

    def fetches(self):
        return self.count('Fetching image %s' % IMAGE_ID)

    def failures(self, count):
        return 'Image %s failed (%d time(s) in a row), next try at' % (
            IMAGE_ID, count)

    def test_service_backs_off_and_watch_says_why(self):
        self.wait_for_log(self.failures(1))
        self.assertEqual(1, self.fetches())
        # Four more runs, a second apart: the image waits for its backoff.
        runs = self.count('Pipeline run done')
        self.wait_for_log('Pipeline run done', count=runs + 4)
        self.assertEqual(1, self.fetches(), self.service.log_tail(80))
        self.assertIn('0 failed, 1 waiting for their retry backoff',
                      self.log())

        started = time.monotonic()
        status, out, err = self.precache('watch', IMAGE_ID, '--interval',
                                         '0.5', '--timeout', '60')
        self.assertEqual(4, status, out + err)
        self.assertLess(time.monotonic() - started, 30)
        self.assertIn('precache: precache-service cannot fetch image %s: '
                      % IMAGE_ID, err)
        self.assertIn('sha512 of the downloaded bytes is', err)
        self.assertIn('(failed 1 time, next try at', err)

        status, out, err = self.precache('images', '-f', 'json')
        self.assertEqual(0, status, err)
        [image] = json.loads(out)
        self.assertEqual(1, image['Failures'], image)
        self.assertIn('sha512 of the downloaded bytes is', image['Error'])
        self.assertTrue(image['Next try'])
        status, out, err = self.precache('show', IMAGE_ID)
        self.assertEqual(0, status, err)
        self.assertIn('precache-service cannot fetch image %s' % IMAGE_ID,
                      out)
        status, out, err = self.precache('status')
        self.assertEqual(0, status, err)
        self.assertIn('precache-service cannot fetch 1 image(s): %s'
                      % IMAGE_ID, out)

        # An on-demand request is tried at once, whatever the backoff.
        status, out, err = self.precache('cache', IMAGE_ID)
        self.assertEqual(0, status, err)
        self.wait_for_log(self.failures(2), timeout=BACKOFF / 2)
        self.assertEqual(2, self.fetches())

        # A new version in the listing is tried at once; its failure is
        # its first.
        with open(self.listed, 'wb') as f:
            f.write(b'golden bytes, uploaded again ' * 1000)
        self.wait_for_log(self.failures(1), count=2, timeout=BACKOFF / 2)
        self.assertEqual(3, self.fetches())
