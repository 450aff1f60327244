"""The service's metrics: the database collector and the counting proxies."""

import datetime
import urllib.error
import urllib.request

import fixtures
from prometheus_client import exposition

from precache.common import exception
from precache.common import metrics_endpoint
from precache.objects import states
from precache.service import factory
from precache.service import instrumented
from precache.service import metrics
from precache.service import pipeline as pipeline_mod
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0
from precache.tests.unit.service import test_state


def sample(registry, metric, **labels):
    return registry.get_sample_value(metric, labels) or 0


class StateCollectorTest(test_state.StateKeeperTestCase):

    def setUp(self):
        super().setUp()
        self.add_image('a')
        self.add_image('n')
        for host in ('h1', 'h2', 'h3'):
            self.beat(host, T0)
        self.beat('d', at(-1000))
        ids = self.host_ids()
        self.db.open_round('a', 1, 'fanout',
                           [(ids[h], False, at(60))
                            for h in ('h1', 'h2', 'h3')],
                           now=T0)
        self.db.record_report('h1', 'a', states.CACHED, {'bytes': 10},
                              now=at(5))
        self.db.record_report('d', 'a', states.FAILED, {'code': 'busy'},
                              now=at(-1000))
        self.db.record_report('h2', 'a', states.FAILED,
                              {'code': 'no_space'}, now=at(6))
        # n: no longer listed, so not desired: no series of its own.
        self.db.record_listing([state_base.record('a')], complete=True,
                               now=at(20))
        self.clock(30)
        self.registry = metrics.registry(self.keeper)

    def test_figures_are_those_of_get_status(self):
        status = self.keeper.get_status(None)

        def get(metric, **labels):
            return sample(self.registry, metric, **labels)

        self.assertEqual(1, get('precache_database_up'))
        self.assertEqual(status['hosts']['up'],
                         get('precache_hosts', state='up'))
        self.assertEqual(1, get('precache_hosts', state='down'))
        self.assertEqual(
            {'h1': 1, 'h2': 1, 'h3': 1, 'd': 0},
            {h: get('precache_host_up', host=h)
             for h in ('h1', 'h2', 'h3', 'd')})
        self.assertEqual(
            (at(-1000) - datetime.datetime(1970, 1, 1)).total_seconds(),
            get('precache_host_last_heartbeat_timestamp_seconds', host='d'))
        image, = [i for i in status['images'] if i['image_id'] == 'a']
        for state in states.STATUSES + ('waiting',):
            self.assertEqual(image['counts'].get(state, 0),
                             get('precache_image_hosts', image='a',
                                 state=state), state)
        self.assertEqual(3, get('precache_image_live_targets', image='a'))
        self.assertEqual(1, get('precache_image_hosts', image='a',
                                state='pending'))
        self.assertEqual(1, get('precache_image_info', image='a',
                                name='image a', disk_format='raw'))
        self.assertIsNone(self.registry.get_sample_value(
            'precache_image_live_targets', {'image': 'n'}))
        # Live hosts only: d's failure is not counted.
        self.assertEqual(1, get('precache_host_image_failures',
                                code='no_space'))
        self.assertEqual(0, get('precache_host_image_failures', code='busy'))
        self.assertEqual(1, get('precache_rounds_open', kind='fanout'))

    def test_unreadable_database(self):
        self.useFixture(fixtures.MockPatchObject(
            self.db, 'list_hosts', side_effect=RuntimeError('gone')))
        text = exposition.generate_latest(self.registry).decode()
        self.assertIn('precache_database_up 0.0', text)
        self.assertNotIn('precache_hosts{', text)

    def test_endpoint_serves_the_registry(self):
        endpoint = metrics_endpoint.MetricsEndpoint(('127.0.0.1', 0),
                                                    self.registry)
        endpoint.start()
        self.addCleanup(endpoint.stop)
        url = 'http://127.0.0.1:%d' % endpoint.port
        with urllib.request.urlopen(url + '/metrics', timeout=10) as r:
            body = r.read().decode()
            self.assertTrue(r.headers['Content-Type'].startswith(
                'text/plain'))
        self.assertIn('precache_image_live_targets{image="a"} 3.0', body)
        error = self.assertRaises(urllib.error.HTTPError,
                                  urllib.request.urlopen, url + '/other',
                                  timeout=10)
        self.assertEqual(404, error.code)

    def test_endpoint_from_conf(self):
        self.assertIsNone(metrics.endpoint_from_conf(self.conf,
                                                     self.keeper))
        self.flags(group='metrics', enabled=True, port=0)
        endpoint = metrics.endpoint_from_conf(self.conf, self.keeper)
        self.addCleanup(endpoint.server_close)
        self.flags(group='metrics', port=endpoint.port)
        error = self.assertRaises(exception.ConfigurationError,
                                  metrics.endpoint_from_conf, self.conf,
                                  self.keeper)
        self.assertIn('[metrics] listen_address 127.0.0.1, port %d: '
                      'cannot listen' % endpoint.port, str(error))


class ProxiesTest(test_state.StateKeeperTestCase):
    """The in-process counters, through the parts factory.build wires."""

    def setUp(self):
        super().setUp()
        self.parts = factory.build(self.conf, self.db,
                                   agent_api=self.agent_api,
                                   notifier=self.notifier,
                                   with_pipeline=False, metrics=True)

    def delta(self, name, **labels):
        before = sample(metrics.IN_PROCESS, name, **labels)
        return lambda: sample(metrics.IN_PROCESS, name, **labels) - before

    def test_casts_rounds_and_reports(self):
        fanouts = self.delta('precache_casts_total', kind='fanout')
        targeted = self.delta('precache_casts_total', kind='targeted')
        rounds = self.delta('precache_rounds_started_total', kind='fanout')
        timed = self.delta('precache_round_duration_seconds_count',
                           kind='fanout', outcome='complete')
        cached = self.delta('precache_agent_reports_total', status='cached',
                            code='')
        odd = self.delta('precache_agent_reports_total', status='failed',
                         code='other')
        received = self.delta('precache_agent_received_bytes_total',
                              source='http')
        from_deltas = self.delta('precache_agent_received_bytes_total',
                                 source='delta')
        self.beat('h1', at(30))
        self.clock(30)
        self.parts.reconciler.fan_out(None, self.add_image('a'), now=at(30))
        self.parts.reconciler.agent_api.cache(
            None, 'a', {'generation': 1}, host='h1')
        self.assertEqual((1, 1, 1), (fanouts(), targeted(), rounds()))
        endpoint = self.parts.manager.state
        self.assertIsInstance(endpoint, instrumented.StateKeeper)
        endpoint.report(None, 'h1', 'a', states.CACHED,
                        {'bytes': 99, 'source': 'http'})
        endpoint.report(None, 'h1', 'b', states.FAILED,
                        {'code': 'made-up'})
        endpoint.report(None, 'h1', 'b', 'bogus', {})
        endpoint.report(None, 'h1', 'c', states.CACHED,
                        {'bytes': 7, 'source': 'delta', 'delta_base': 'a'})
        self.assertEqual((2, 1, 99, 7, 1), (cached(), odd(), received(),
                                            from_deltas(), timed()))


class PipelineProxyTest(test_state.StateKeeperTestCase):

    def test_outcomes_by_code(self):
        class Runs(object):
            def run(self, context):
                return [pipeline_mod.ImageOutcome('a', distributed=True),
                        pipeline_mod.ImageOutcome('b'),
                        pipeline_mod.ImageOutcome('c', error='x',
                                                  code='fetch_failed'),
                        pipeline_mod.ImageOutcome('d', error='x',
                                                  deferred=True)]

        names = [('precache_pipeline_images_total', {'outcome': o})
                 for o in ('cast', 'unchanged', 'failed', 'deferred')]
        names.append(('precache_pipeline_image_failures_total',
                      {'code': 'fetch_failed'}))
        names.append(('precache_pipeline_run_duration_seconds_count', {}))
        before = [sample(metrics.IN_PROCESS, n, **l) for n, l in names]
        instrumented.Pipeline(Runs()).run(None)
        after = [sample(metrics.IN_PROCESS, n, **l) for n, l in names]
        self.assertEqual([1] * len(names),
                         [b - a for a, b in zip(before, after)])
