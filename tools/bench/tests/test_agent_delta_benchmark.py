"""tools/bench/agent_delta_benchmark.py: the pair, and a small whole run."""

import contextlib
import hashlib
import io
import os

import fixtures

import agent_delta_benchmark as bench
from precache.tests import base

MiB = 1024 * 1024


class MakePairTest(base.TestCase):

    def test_v2_is_v1_with_changes_and_an_insertion(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        (v1, v2), hashes = bench.make_pair(tmp, 3 * MiB)
        with open(v1, 'rb') as f:
            one = f.read()
        with open(v2, 'rb') as f:
            two = f.read()
        self.assertEqual(3 * MiB, len(one))
        self.assertEqual(3 * MiB + 12345, len(two))
        self.assertEqual([hashlib.sha512(one).hexdigest(),
                          hashlib.sha512(two).hexdigest()], hashes)
        # Up to the insertion most of the bytes are v1's.
        same = sum(a == b for a, b in zip(one[:MiB], two[:MiB]))
        self.assertGreater(same, MiB - 2 * bench.BLOCK)


class WholeRunTest(base.TestCase):

    def test_prints_the_three_phases(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            bench.main(['--size', '4M', '--workdir', tmp])
        table = out.getvalue()
        for phase in ('(d) land v2 from the delta',
                      '(f) land v2 from the full artifact',
                      '(i) index v1 and v2'):
            self.assertIn(phase, table)
        self.assertIn('MiB', table)
        self.assertEqual([], os.listdir(tmp))
