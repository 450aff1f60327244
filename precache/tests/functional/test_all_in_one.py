"""The README's first command: precache-all-in-one, end to end."""

import os
import re
import subprocess
import sys

from precache.objects import image as image_mod
from precache.tests.functional import base

#: Lines the whole output of a default run may take.
MAX_LINES = 40


class AllInOneTest(base.FunctionalTestCase):

    def run_all_in_one(self, *args, env=None):
        return subprocess.run(
            [sys.executable, '-m', 'precache.cmd.all_in_one'] + list(args),
            capture_output=True, text=True, timeout=300, env=env)

    def test_every_host_lands_the_sample_image(self):
        work_dir = os.path.join(self.tempdir, 'aio')
        result = self.run_all_in_one('--hosts', '2', '--work-dir', work_dir)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertIn('all hosts cached every image', result.stdout)
        images = os.listdir(os.path.join(work_dir, 'images'))
        self.assertEqual(1, len(images))
        base_name = image_mod.nova_cache_name(images[0])
        # One table per image, one row per host.
        table = result.stdout.split('\nimage %s: ' % images[0], 1)[1]
        self.assertIn('cached 2 of 2 live target host(s)', table)
        log_file = os.path.join(work_dir, 'precache-all-in-one.log')
        with open(log_file) as f:
            log = f.read()
        for host in ('compute-1', 'compute-2'):
            self.assertRegex(table, r'\n%s  cached  [0-9.]+ +_base/%s \(' %
                             (host, base_name))
            landed = os.path.join(work_dir, 'hosts', host, 'instances',
                                  '_base', base_name)
            # The agent's own account, in the log file.
            self.assertIn('Image %s is cached at %s' % (images[0], landed),
                          log)
            stat = os.stat(landed)
            # Converted to raw (virtual size) and sparse (zero runs).
            self.assertEqual(256 * 1024 * 1024, stat.st_size)
            self.assertLess(stat.st_blocks * 512, stat.st_size)

    def test_output_is_short_and_logs_go_to_a_file(self):
        work_dir = os.path.join(self.tempdir, 'aio')
        result = self.run_all_in_one('--work-dir', work_dir)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        # Nothing on stderr: no warning of a library, no log line.
        self.assertEqual('', result.stderr)
        lines = result.stdout.splitlines()
        self.assertLessEqual(len(lines), MAX_LINES, result.stdout)
        log_file = os.path.join(work_dir, 'precache-all-in-one.log')
        self.assertIn('daemon logs: %s' % log_file, result.stdout)
        self.assertNotRegex(result.stdout, r'\b(INFO|WARNING|DEBUG)\b')
        self.assertEqual(3, len(re.findall(r'\[\d/3\] compute-\d: cached',
                                           result.stdout)))
        with open(log_file) as f:
            self.assertIn('Pipeline run done: 1 image(s) served', f.read())
        next_steps = result.stdout.split('What to try next:\n', 1)[1]
        self.assertTrue(2 <= len(next_steps.splitlines()) <= 4, next_steps)

    def test_without_qemu_img_one_line_names_the_package(self):
        empty = os.path.join(self.tempdir, 'bin')
        os.mkdir(empty)
        result = self.run_all_in_one(
            '--work-dir', os.path.join(self.tempdir, 'aio'),
            env=dict(os.environ, PATH=empty))
        self.assertEqual(2, result.returncode)
        self.assertEqual('', result.stdout)
        self.assertEqual(
            'precache-all-in-one: qemu-img is not installed on this host: '
            'apt-get install qemu-utils (dnf install qemu-img on RHEL-like '
            'hosts)\n', result.stderr)
