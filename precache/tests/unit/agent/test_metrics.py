"""The agent's metrics textfile."""

import os

from prometheus_client import parser

from precache.agent import metrics
from precache.objects import states
from precache.tests import base


class FakeStore(object):

    def disk_usage(self):
        return {'total': 1000, 'free': 600, 'cache_bytes': 400}


class FakeServiceAPI(object):

    def __init__(self):
        self.reports = []

    def report(self, context, host, image_id, status, detail):
        self.reports.append((host, image_id, status, detail))

    def heartbeat(self, context, host, status):
        return 'beat'


class AgentMetricsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.metrics = metrics.AgentMetrics()
        self.metrics.watch_disk(FakeStore())
        self.service_api = FakeServiceAPI()
        self.api = metrics.ReportingServiceAPI(self.service_api,
                                               self.metrics)
        self.dir = os.path.join(self.tempdir, 'textfile')
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, 'precache_agent.prom')

    def read(self):
        with open(self.path) as f:
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in parser.text_string_to_metric_families(
                        f.read()) for s in family.samples}

    def test_reports_are_counted_and_passed_on(self):
        reports = [
            (states.DOWNLOADING, {}),
            (states.CACHED, {'bytes': 300, 'seconds': 2.0,
                             'source': 'bittorrent'}),
            (states.CACHED, {'bytes': 100, 'seconds': 1.0,
                             'source': 'http'}),
            (states.EXISTING, {'seconds': 0.1}),
            (states.FAILED, {'code': 'hash_mismatch', 'seconds': 3.0}),
            (states.FAILED, {'code': 'not-a-code'}),
        ]
        for status, detail in reports:
            self.api.report(None, 'h1', 'img', status, detail)
        self.assertEqual(len(reports), len(self.service_api.reports))
        self.assertEqual('beat', self.api.heartbeat(None, 'h1', {}))

        self.metrics.write(self.path)
        got = self.read()

        def value(name, **labels):
            return got.get((name, tuple(sorted(labels.items()))))

        self.assertEqual(1, value('precache_agent_downloads_total',
                                  outcome='cached', source='bittorrent'))
        self.assertEqual(1, value('precache_agent_downloads_total',
                                  outcome='cached', source='http'))
        self.assertEqual(1, value('precache_agent_downloads_total',
                                  outcome='existing', source=''))
        self.assertEqual(2, value('precache_agent_downloads_total',
                                  outcome='failed', source=''))
        self.assertEqual(1, value('precache_agent_download_failures_total',
                                  code='hash_mismatch'))
        self.assertEqual(1, value('precache_agent_download_failures_total',
                                  code='other'))
        self.assertEqual(300, value('precache_agent_received_bytes_total',
                                    source='bittorrent'))
        self.assertEqual(2, value(
            'precache_agent_download_duration_seconds_count',
            outcome='cached'))
        self.assertEqual(400, value('precache_agent_cache_bytes'))
        self.assertEqual(600, value('precache_agent_disk_free_bytes'))
        self.assertEqual(1000, value('precache_agent_disk_total_bytes'))
        self.assertEqual(['precache_agent.prom'], os.listdir(self.dir))

    def test_unwritable_file_is_logged_not_raised(self):
        path = os.path.join(self.dir, 'missing-dir', 'x.prom')
        self.metrics.write(path)
        self.assertFalse(os.path.exists(path))
        self.assertEqual([], os.listdir(self.dir))
