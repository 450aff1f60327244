"""precache-service as operators run it: a process, signals, plugins."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

from precache.common import fileutils
from precache.db import api as db_api
from precache.tests import fixtures as servers
from precache.tests.fixtures import postgresql
from precache.tests.functional import base

MiB = 1024 * 1024
IMAGE_ID = '2c4b7a9e-51f3-4d3c-8e2a-9a6b5c4d3e2f'


class ServiceProcessTest(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        self.images_dir = os.path.join(self.tempdir, 'images')
        self.staging_dir = os.path.join(self.tempdir, 'staging')
        os.makedirs(self.images_dir)
        self.log_file = os.path.join(self.tempdir, 'service.log')
        self.config_file = os.path.join(self.tempdir, 'precache.conf')

    def write_config(self, interval=3600, fetcher_paths=None,
                     lister='directory', private_key_file=True,
                     http_port=0, database=None):
        paths = ','.join('%s:%s' % item
                         for item in (fetcher_paths or {}).items())
        with open(self.config_file, 'w') as f:
            f.write('[DEFAULT]\ntransport_url = fake:/\nlog_file = %s\n'
                    'debug = true\nstate_path = %s\n'
                    % (self.log_file, self.tempdir))
            f.write('[service]\ninterval = %d\nlisters = %s\nfetcher = file\n'
                    'server = http\nstaging_dir = %s\n'
                    % (interval, lister, self.staging_dir))
            f.write('[directory_lister]\npath = %s\n' % self.images_dir)
            f.write('[file_fetcher]\nimage_dir = %s\nimage_paths = %s\n'
                    % (self.images_dir, paths))
            f.write('[http_server]\nbind_host = 127.0.0.1\nbind_port = %d\n'
                    'document_root = %s\n'
                    % (http_port, os.path.join(self.tempdir, 'www')))
            if database:
                f.write('[database]\nconnection = %s\n' % database)
            if private_key_file is True:
                private_key_file = self.signing_keys.private_key_file
            if private_key_file:
                f.write('[signing]\nprivate_key_file = %s\n'
                        % private_key_file)

    def start(self):
        process = subprocess.Popen(
            [sys.executable, '-m', 'precache.cmd.service', '--config-file',
             self.config_file], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self._kill, process)
        return process

    def _kill(self, process):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def wait_for_log(self, text, timeout=60, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.log_file):
                with open(self.log_file, errors='replace') as f:
                    if f.read().count(text) >= count:
                        return
            time.sleep(0.2)
        self.fail('%r not logged %d time(s); log:\n%s' % (
            text, count, self._log()))

    def _log(self):
        try:
            with open(self.log_file, errors='replace') as f:
                return f.read()[-4000:]
        except OSError:
            return '(no log)'

    def test_missing_plugin_stops_the_service_at_start(self):
        self.write_config(lister='no-such-lister')
        process = self.start()
        output, _ = process.communicate(timeout=60)
        self.assertEqual(2, process.returncode)
        self.assertIn(b"'no-such-lister' is not installed in entry point "
                      b"namespace precache.listers", output)

    def test_missing_signing_key_stops_the_service_at_start(self):
        for key_file in (None, os.path.join(self.tempdir, 'nowhere.pem')):
            self.write_config(private_key_file=key_file)
            process = self.start()
            output, _ = process.communicate(timeout=60)
            self.assertEqual(2, process.returncode, output)
            self.assertIn(b'error: Invalid configuration: [signing] '
                          b'private_key_file: cannot use', output)
            self.assertIn(b'precache-manage signing generate-keys', output)

    def test_sigterm_during_a_fetch_leaves_no_partial_file(self):
        # The lister sees a regular file; the fetcher reads the same bytes
        # from a FIFO fed slowly, so the fetch is in progress when the
        # service is told to stop.
        data = os.urandom(MiB) * 64
        with open(os.path.join(self.images_dir, IMAGE_ID), 'wb') as f:
            f.write(data)
        fifo = os.path.join(self.tempdir, 'slow-image')
        os.mkfifo(fifo)
        self.write_config(fetcher_paths={IMAGE_ID: fifo})
        stop_feeding = threading.Event()
        feeder = threading.Thread(target=self._feed,
                                  args=(fifo, data, stop_feeding))
        feeder.start()
        self.addCleanup(feeder.join, 30)
        self.addCleanup(stop_feeding.set)

        process = self.start()
        self.wait_for_log('Fetching image %s' % IMAGE_ID)
        self.assertTrue(self._staging_temp_files(), self._log())
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        stop_feeding.set()

        self.assertEqual([], self._staging_temp_files())
        self.assertFalse(os.path.exists(
            os.path.join(self.staging_dir, IMAGE_ID)))
        self.assertIn('the service is stopping', self._log())

    def test_kill_9_in_a_cycle_then_restart_keeps_the_state(self):
        # Image A is fetched, served and fanned out; image B's fetch is in
        # progress (a slow FIFO) when the service is killed outright.
        done = b'precache' * 100000
        with open(os.path.join(self.images_dir, IMAGE_ID), 'wb') as f:
            f.write(done)
        slow_id = '7d3e9a1b-6c5f-4e2d-8a0b-1c2d3e4f5a6b'
        slow = os.urandom(MiB) * 64
        with open(os.path.join(self.images_dir, slow_id), 'wb') as f:
            f.write(slow)
        fifo = os.path.join(self.tempdir, 'slow-image')
        os.mkfifo(fifo)
        # A fixed port, as in production: the sources stay the same.
        port = servers.free_port()
        self.write_config(fetcher_paths={slow_id: fifo}, http_port=port)
        stop_feeding = threading.Event()
        feeder = threading.Thread(target=self._feed,
                                  args=(fifo, slow, stop_feeding))
        feeder.start()
        self.addCleanup(feeder.join, 30)
        self.addCleanup(stop_feeding.set)
        process = self.start()
        self.wait_for_log('Image %s fanned out' % IMAGE_ID)
        self.wait_for_log('Fetching image %s' % slow_id)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        stop_feeding.set()
        leftovers = self._staging_temp_files()
        self.assertTrue(leftovers, self._log())

        # Back, with image B readable at once.
        self.write_config(fetcher_paths={}, http_port=port)
        self.start()
        self.wait_for_log('Image %s fanned out' % slow_id)
        self.wait_for_log('Pipeline run done', count=1)
        log = self._log_all()
        # A stayed staged and decided: neither fetched nor cast again.
        self.assertEqual(1, log.count('Fetching image %s' % IMAGE_ID))
        self.assertEqual(1, log.count('Image %s fanned out' % IMAGE_ID))
        self.assertIn('Image %s is already staged and unchanged' % IMAGE_ID,
                      log)
        # The killed fetch's temporary file was removed at the start.
        for name in leftovers:
            self.assertFalse(os.path.exists(
                os.path.join(self.staging_dir, name)))
        self.assertEqual([], self._staging_temp_files())
        with open(os.path.join(self.staging_dir, slow_id), 'rb') as f:
            self.assertEqual(hashlib.sha256(slow).hexdigest(),
                             hashlib.sha256(f.read()).hexdigest())

    def test_database_restart_in_a_cycle(self):
        cluster = self.useFixture(postgresql.PostgreSQLClusterFixture())
        with open(os.path.join(self.images_dir, IMAGE_ID), 'wb') as f:
            f.write(b'precache' * 1000)
        self.write_config(interval=1, database=cluster.url)
        process = self.start()
        self.wait_for_log('Image %s fanned out' % IMAGE_ID)
        cluster.stop()
        time.sleep(3)
        cluster.start()
        # An image that appears after the restart is listed and served.
        later = '0f1e2d3c-4b5a-4968-8776-655443322110'
        with open(os.path.join(self.images_dir, later), 'wb') as f:
            f.write(b'later' * 1000)
        self.wait_for_log('Image %s fanned out' % later, timeout=90)
        self.assertIsNone(process.poll(), self._log())
        db = db_api.StateDB(cluster.url)
        self.addCleanup(db.engine.dispose)
        self.assertEqual({IMAGE_ID, later},
                         {row['id'] for row in db.list_images()})

    def _log_all(self):
        with open(self.log_file, errors='replace') as f:
            return f.read()

    def _feed(self, fifo, data, stop):
        try:
            with open(fifo, 'wb') as f:
                for offset in range(0, len(data), MiB):
                    if stop.is_set():
                        return
                    f.write(data[offset:offset + MiB])
                    f.flush()
                    time.sleep(0.1)
        except BrokenPipeError:
            pass

    def _staging_temp_files(self):
        if not os.path.isdir(self.staging_dir):
            return []
        return [n for n in os.listdir(self.staging_dir)
                if n.startswith(fileutils.TEMP_PREFIX)]

    def test_sighup_applies_a_new_interval(self):
        data = b'precache' * 1000
        with open(os.path.join(self.images_dir, IMAGE_ID), 'wb') as f:
            f.write(data)
        self.write_config(interval=3600)
        process = self.start()
        self.wait_for_log('every 3600s')
        self.wait_for_log('Pipeline run done: 1 image(s) served')
        staged = os.path.join(self.staging_dir, IMAGE_ID)
        with open(staged, 'rb') as f:
            self.assertEqual(hashlib.sha512(data).digest(),
                             hashlib.sha512(f.read()).digest())

        self.write_config(interval=1)
        os.killpg(process.pid, signal.SIGHUP)
        self.wait_for_log('every 1s')
        # With the new interval, runs follow each other every second.
        self.wait_for_log('Pipeline run done: 1 image(s) served', count=4)
        os.killpg(process.pid, signal.SIGTERM)
        self.assertEqual(0, process.wait(60))
