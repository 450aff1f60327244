"""The README's first command: precache-all-in-one, end to end."""

import os
import subprocess
import sys

from precache.objects import image as image_mod
from precache.tests.functional import base


class AllInOneTest(base.FunctionalTestCase):

    def test_every_host_lands_the_sample_image(self):
        work_dir = os.path.join(self.tempdir, 'aio')
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cmd.all_in_one', '--hosts', '2',
             '--work-dir', work_dir],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertIn('all hosts cached every image', result.stdout)
        images = os.listdir(os.path.join(work_dir, 'images'))
        self.assertEqual(1, len(images))
        base_name = image_mod.nova_cache_name(images[0])
        for host in ('compute-1', 'compute-2'):
            self.assertIn('%s  %s  cached' % (host, images[0]), result.stdout)
            landed = os.path.join(work_dir, 'hosts', host, 'instances',
                                  '_base', base_name)
            stat = os.stat(landed)
            # Converted to raw (virtual size) and sparse (zero runs).
            self.assertEqual(256 * 1024 * 1024, stat.st_size)
            self.assertLess(stat.st_blocks * 512, stat.st_size)
