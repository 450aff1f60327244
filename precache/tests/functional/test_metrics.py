"""Prometheus metrics on real parts.

A precache-service process with ``[metrics] enabled``, three
precache-agent processes writing their textfiles, a real RabbitMQ and the
``precache`` CLI. The service's endpoint is scraped during and after the
distribution of an image and checked against ``precache status -f json``,
``precache show -f json`` and the agents' own files; one agent cannot
land the image (its disk reserve is too high), so failures by code show.
"""

import os
import shutil
import urllib.request

from prometheus_client import parser

from precache.tests import fixtures as servers
from precache.tests.fixtures import control_plane
from precache.tests.functional import test_convergence
from precache.tests.functional import test_distribution

HOSTS = ['mtr-1', 'mtr-2', 'mtr-3']
BROKEN_HOST = 'mtr-3'
IMAGE_ID = 'metrics-image-1'
STATES = ('cached', 'existing', 'downloading', 'pending', 'failed',
          'missing', 'waiting')


def parse(text):
    """``{(sample name, ((label, value), ...)): value}`` of a scrape."""
    return {(sample.name, tuple(sorted(sample.labels.items()))):
            sample.value
            for family in parser.text_string_to_metric_families(text)
            for sample in family.samples}


def value(samples, metric, **labels):
    """The value of one sample (0 when absent, as Prometheus sums)."""
    return samples.get((metric, tuple(sorted(labels.items()))), 0)


class MetricsTest(test_convergence.ServiceProcessTestCase):

    def setUp(self):
        self.metrics_port = servers.free_port()
        service = dict(test_convergence.SERVICE_OPTIONS['service'],
                       # The failed host stays failed while the test
                       # compares the figures.
                       retry_backoff=120, retry_backoff_max=120)
        self.service_options = dict(
            service=service,
            metrics={'enabled': True, 'listen_address': '127.0.0.1',
                     'port': self.metrics_port})
        super().setUp()

    def scrape_service(self):
        url = 'http://127.0.0.1:%d/metrics' % self.metrics_port
        with urllib.request.urlopen(url, timeout=20) as response:
            self.assertEqual(200, response.status)
            return parse(response.read().decode())

    def scrape_agent(self, agent):
        with open(agent.textfile) as f:
            return parse(f.read())

    def start_agents(self):
        agents = {}
        for host in HOSTS:
            textfile = os.path.join(self.tempdir, host + '.prom')
            options = {'agent': {'heartbeat_interval': 1},
                       'metrics': {'textfile': textfile,
                                   'textfile_interval': 1}}
            if host == BROKEN_HOST:
                options['agent']['disk_reserve_mb'] = 1024 * 1024 * 1024
            agents[host] = self.useFixture(control_plane.AgentProcessFixture(
                self.messaging, host, self.tempdir, options=options))
            agents[host].textfile = textfile
        return agents

    def test_metrics_match_status_and_agents(self):
        agents = self.start_agents()
        self.wait_until(lambda: set(HOSTS) <= self.live_hosts(),
                        'three agents up')
        samples = self.scrape_service()
        self.assertEqual(1, value(samples, 'precache_database_up'))
        self.assertEqual(3, value(samples, 'precache_hosts', state='up'))
        self.assertEqual(0, value(samples, 'precache_hosts', state='down'))
        for host in HOSTS:
            self.assertEqual(1, value(samples, 'precache_host_up',
                                      host=host))

        qcow2, _ = test_distribution.make_qcow2(self.tempdir, 'metrics')
        shutil.copy(qcow2, os.path.join(self.images_dir, IMAGE_ID))

        # During the distribution: every live target is in one state.
        during = self.wait_until(
            lambda: (lambda s: s if value(
                s, 'precache_image_live_targets', image=IMAGE_ID) else None)(
                self.scrape_service()), 'the image in the metrics')
        self.assertEqual(3, sum(
            value(during, 'precache_image_hosts', image=IMAGE_ID, state=s)
            for s in STATES))

        status, output = self.watch(IMAGE_ID)
        # The broken host failed.
        self.assertEqual(1, status, self.explain(output, agents))
        # The fanout round ended (three answers): nothing moves until the
        # broken host's backoff is over.
        self.wait_until(lambda: value(
            self.scrape_service(), 'precache_round_duration_seconds_count',
            kind='fanout', outcome='complete'), 'the round timed')

        after = self.scrape_service()
        row, = [i for i in self.precache_json('status')
                if i['Image ID'] == IMAGE_ID]
        self.assertEqual(row['Live targets'], value(
            after, 'precache_image_live_targets', image=IMAGE_ID))
        for state in STATES:
            self.assertEqual(row[state.capitalize()], value(
                after, 'precache_image_hosts', image=IMAGE_ID,
                state=state), state)
        self.assertEqual(2, row['Cached'] + row['Existing'])
        self.assertEqual(1, row['Failed'])
        self.assertEqual(1, value(after, 'precache_host_image_failures',
                                  code='no_space'))
        self.assertEqual(1, value(after, 'precache_rounds_started_total',
                                  kind='fanout'))
        self.assertEqual(1, value(after, 'precache_casts_total',
                                  kind='fanout'))
        self.assertEqual(1, value(after, 'precache_image_info',
                                  image=IMAGE_ID, name=row['Name'],
                                  disk_format='qcow2'))
        self.assertEqual(2, value(after, 'precache_agent_reports_total',
                                  status='cached', code=''))
        self.assertGreaterEqual(value(
            after, 'precache_agent_reports_total', status='failed',
            code='no_space'), 1)
        self.assertGreaterEqual(value(
            after, 'precache_pipeline_run_duration_seconds_count'), 1)
        self.assertEqual(1, value(after, 'precache_pipeline_images_total',
                                  outcome='cast'))

        # Bytes: what each agent counted is what it reported to the
        # service, and the service's web server sent at least as much.
        shown = {line['Host']: line for line in
                 self.precache_json('show', IMAGE_ID)}
        received = 0
        for host in set(HOSTS) - {BROKEN_HOST}:
            line = shown[host]
            self.assertEqual('cached', line['Status'])
            agent = self.wait_until(
                lambda: (lambda s: s if value(
                    s, 'precache_agent_downloads_total', outcome='cached',
                    source='http') else None)(
                    self.scrape_agent(agents[host])),
                'the metrics file of %s' % host)
            self.assertEqual(line['Bytes'], value(
                agent, 'precache_agent_received_bytes_total',
                source='http'))
            self.assertEqual(1, value(
                agent, 'precache_agent_download_duration_seconds_count',
                outcome='cached'))
            self.assertGreater(value(agent, 'precache_agent_cache_bytes'), 0)
            self.assertGreater(value(agent, 'precache_agent_disk_free_bytes'),
                               0)
            received += line['Bytes']
        self.assertGreater(received, 0)
        self.assertEqual(received, value(
            after, 'precache_agent_received_bytes_total', source='http'))
        self.assertGreaterEqual(value(
            after, 'precache_served_bytes_total', server='http'), received)

        broken = self.wait_until(
            lambda: (lambda s: s if value(
                s, 'precache_agent_download_failures_total',
                code='no_space') else None)(
                self.scrape_agent(agents[BROKEN_HOST])),
            'the failure in the metrics file of %s' % BROKEN_HOST)
        self.assertEqual(0, value(broken, 'precache_agent_downloads_total',
                                  outcome='cached', source='http'))
        self.assertGreaterEqual(value(
            broken, 'precache_agent_downloads_total', outcome='failed',
            source=''), 1)
        # The file is replaced whole: no temporary file stays beside it.
        for agent in agents.values():
            agent.stop()
        self.assertEqual(sorted(h + '.prom' for h in HOSTS), sorted(
            n for n in os.listdir(self.tempdir) if '.prom' in n))
