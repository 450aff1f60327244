"""Reading an agent's log on the testbed (tools/testbed/cluster.py)."""

import os

import fixtures

import cluster
from precache.tests import base

IMAGE = '6f1a4c1e-2b8d-4c55-9f2e-0d5c3a7b9e10'
OTHER = '0b1e2c3d-0000-4000-8000-000000000001'


class LandingSecondsTest(base.TestCase):

    def _log(self, *lines):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'agent.log')
        with open(path, 'w') as f:
            f.write(''.join(line + '\n' for line in lines))
        return path

    def test_from_the_end_of_the_download_to_cached(self):
        path = self._log(
            '2026-11-21 10:00:00.100 7 INFO precache.agent.download [-] '
            'Image %s: downloading from source 1/2, http http://o/a' % IMAGE,
            '2026-11-21 10:00:20.250 7 INFO precache.agent.download [-] '
            'Image %s: 61145088 bytes (35598382 received) from http '
            'http://o/a in 20.1s' % IMAGE,
            '2026-11-21 10:00:20.300 7 INFO precache.agent.stores.base [-] '
            'Image %s is cached at /x/_base/y' % IMAGE,
            '  a traceback or continuation line',
            '2026-11-21 10:00:21.450 7 INFO precache.agent.manager [-] '
            'Image %s cached in 21.3s' % IMAGE)
        self.assertAlmostEqual(1.2, cluster.landing_seconds(path, IMAGE))

    def test_other_images_and_failures_give_nothing(self):
        path = self._log(
            '2026-11-21 10:00:20.250 7 INFO precache.agent.download [-] '
            'Image %s: 10 bytes (10 received) from http http://o/b in '
            '0.1s' % OTHER,
            '2026-11-21 10:00:21.000 7 INFO precache.agent.manager [-] '
            'Image %s cached in 1.0s' % OTHER,
            '2026-11-21 10:00:22.000 7 ERROR precache.agent.manager [-] '
            'Caching image %s failed: all sources failed' % IMAGE)
        self.assertIsNone(cluster.landing_seconds(path, IMAGE))
