"""The baselines and the table of tools/bench/agent_download_benchmark.py."""

import hashlib
import os
import subprocess

import fixtures

import agent_download_benchmark as bench
from precache.tests import base

GiB = 1024 ** 3


class ShellAgentScriptTest(base.TestCase):
    """Baseline (b) does the agent's work: the image's hash, holes, a file."""

    def test_hashes_and_writes_a_sparse_copy(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        image = b'precache' * 8192 + bytes(1024 * 1024) + b'end'
        raw = os.path.join(tmp, 'image.raw')
        with open(raw, 'wb') as f:
            f.write(image)
        subprocess.run(['zstd', '-q', raw, '-o', raw + '.zst'], check=True)
        target = os.path.join(tmp, 'landed')
        out = subprocess.run(
            ['bash', '-c', 'set -e -o pipefail\n' + bench.shell_agent_script(
                'file://' + raw + '.zst', os.path.join(tmp, 'scratch'),
                target)], check=True, capture_output=True, text=True).stdout
        # openssl dgst -r: "<sha512> *stdin"; the artifact is not hashed,
        # as the agent does not beside an image's sha512.
        self.assertEqual([hashlib.sha512(image).hexdigest(), '*stdin'],
                         out.split())
        with open(target, 'rb') as f:
            self.assertEqual(image, f.read())
        stat = os.stat(target)
        # The MiB of zeros is a hole.
        self.assertLess(stat.st_blocks * 512, len(image) - 512 * 1024)
        self.assertFalse(os.path.exists(os.path.join(tmp, 'scratch')))


class FormatTableTest(base.TestCase):

    def test_ratios_are_to_the_floor_and_the_shell_pipe(self):
        runs = {bench.FLOOR: {'seconds': 4.0, 'cpu_seconds': 4.0},
                bench.SHELL: {'seconds': 8.0, 'cpu_seconds': 8.0},
                bench.PRECACHE: {'seconds': 5.0, 'cpu_seconds': 5.0,
                                 'maxrss_kib': 57 * 1024,
                                 'apparent': GiB, 'allocated': GiB // 2}}
        lines = bench.format_table(runs, 2 * GiB).splitlines()
        ours = lines[-1].split()
        # wall, MB/s, vs (a), vs (b), CPU s, CPU s/GiB, CPU/(a).
        self.assertEqual(['5.00', '429', '0.80x', '1.60x', '5.00', '2.50',
                          '1.25x', '57', 'MiB', '512/1024', 'MiB'],
                         ours[-11:])
        floor = lines[2].split()
        self.assertEqual(['1.00x', '2.00x'], floor[-7:-5])
