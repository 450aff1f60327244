"""The ``precache`` CLI, run in-process against a fake service client."""

import io
import json
import logging

import fixtures

from precache.cli import app
from precache.cli import errors
from precache.tests import base

GiB = 1024 ** 3


def host(name, status=None, up=True, targeted=True, received=0,
         reason=None, source=None, delta_base=None):
    """One host dict of ``show_image``."""
    return {'host': name, 'up': up, 'targeted': targeted, 'status': status,
            'reason': reason, 'code': None, 'attempts': 1 if status else 0,
            'source': source, 'delta_base': delta_base,
            'bytes': received, 'seconds': 2.5 if status else None,
            'updated_at': '2026-01-02T03:04:05Z' if status else None,
            'next_attempt_at': None}


def show_result(hosts, size=1000, image_id='img-1'):
    """A ``show_image`` answer whose summary agrees with ``hosts``."""
    live = [h for h in hosts if h['up'] and h['targeted']]
    statuses = [h['status'] for h in live]
    summary = {
        'live_targets': len(live),
        'done': sum(s in ('cached', 'existing') for s in statuses),
        'failed': statuses.count('failed'),
        'missing': statuses.count('missing'),
        'in_progress': sum(s in ('pending', 'downloading')
                           for s in statuses),
        'waiting': statuses.count(None),
        'bytes': sum(h['bytes'] for h in hosts),
    }
    return {'image': {'image_id': image_id, 'name': 'ubuntu-24.04',
                      'size': size},
            'hosts': hosts, 'summary': summary}


IMAGE = {'image_id': 'img-1', 'name': 'ubuntu-24.04', 'disk_format': 'qcow2',
         'size': 3 * GiB, 'listed_by': ['glance'], 'listed': True,
         'requested': False, 'pinned_until': None,
         'targets': {'hosts': [], 'labels': ['az1']}, 'generation': 4,
         'desired': True, 'first_seen': '2026-01-01T00:00:00Z',
         'last_seen': '2026-01-02T00:00:00Z', 'error': None, 'failures': 0,
         'failed_at': None, 'retry_at': None, 'retrying': False}


class Replies(list):
    """Answers returned in turn; the last one again once exhausted."""


class FakeClient(object):
    """Answers like precache-service; records the calls.

    ``answers[method]`` is a value, an exception to raise, or
    :class:`Replies`.
    """

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []
        self.closed = False

    def call(self, method, **kwargs):
        self.calls.append((method, kwargs))
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Replies):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer

    def close(self):
        self.closed = True


class FakeTime(object):
    """Stands for the ``time`` module: ``sleep`` advances the clock."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class RootLogger(fixtures.Fixture):
    """Restores the root logger that cliff's App configures at each run."""

    def _setUp(self):
        root = logging.getLogger()
        self.addCleanup(setattr, root, 'handlers', list(root.handlers))
        self.addCleanup(root.setLevel, root.level)


class CLITestCase(base.TestCase):
    """Runs the App in-process with a :class:`FakeClient`."""

    def setUp(self):
        super().setUp()
        self.useFixture(RootLogger())
        self.client = FakeClient()

    def run_cli(self, *argv):
        """Run ``precache argv``; return (status, stdout, stderr)."""
        stdout, stderr = io.StringIO(), io.StringIO()
        cli = app.PrecacheApp(connect=lambda options: self.client,
                              stdout=stdout, stderr=stderr)
        status = cli.run(list(argv))
        return status, stdout.getvalue(), stderr.getvalue()

    def run_json(self, *argv):
        status, out, err = self.run_cli(*(argv + ('-f', 'json')))
        self.assertEqual(0, status, err)
        return json.loads(out)


class OverviewTest(CLITestCase):

    def test_status_table_and_json(self):
        self.client.answers['get_status'] = {
            'hosts': {'total': 5, 'up': 4, 'down': 1},
            'images': [dict(IMAGE, live_targets=4,
                            counts={'cached': 2, 'downloading': 1,
                                    'failed': 1})]}
        status, out, _err = self.run_cli('status')
        self.assertEqual(0, status)
        header = [c.strip() for c in out.splitlines()[1].split('|')[1:-1]]
        self.assertEqual(['Image ID', 'Name', 'Live targets', 'Cached',
                          'Existing', 'Downloading', 'Pending', 'Failed',
                          'Missing', 'Waiting', 'Service failures'],
                         header)
        row = [c.strip() for c in out.splitlines()[3].split('|')[1:-1]]
        self.assertEqual(['img-1', 'ubuntu-24.04', '4', '2', '0', '1', '0',
                          '1', '0', '0', ''], row)
        self.assertIn('Hosts: 4 up, 1 down, 5 in all.', out)
        self.assertNotIn('cannot fetch', out)
        self.assertNotIn('Leader', out)

        [image] = self.run_json('status')
        self.assertEqual(2, image['Cached'])
        self.assertEqual(0, image['Waiting'])
        self.assertTrue(self.client.closed)

    def test_status_names_the_leader(self):
        self.client.answers['get_status'] = {
            'hosts': {'total': 0, 'up': 0, 'down': 0}, 'images': [],
            'service': {'instance': 'svc-b', 'leader': 'svc-a',
                        'leader_since': 1}}
        status, out, _err = self.run_cli('status')
        self.assertEqual(0, status)
        self.assertIn('Leader: svc-a (answered by svc-b).', out)
        self.assertEqual([], self.run_json('status'))

    def test_hosts_human_units_in_table_raw_in_json(self):
        self.client.answers['list_hosts'] = [{
            'name': 'cmp1', 'up': True, 'labels': ['az1', 'gpu'],
            'agent_version': '1.0', 'last_heartbeat': '2026-01-02T03:04:05Z',
            'disk_total': 2 * 1024 * GiB, 'disk_free': 1536 * 1024 ** 2,
            'cache_bytes': 1024, 'images_cached': 3, 'images_failed': 1}]
        status, out, _err = self.run_cli('hosts')
        self.assertEqual(0, status)
        for text in ('2.0 TiB', '1.5 GiB', '1.0 KiB', 'az1, gpu', ' up ',
                     '2026-01-02 03:04:05 ('):
            self.assertIn(text, out)

        [row] = self.run_json('hosts')
        self.assertEqual(1536 * 1024 ** 2, row['Disk free'])
        self.assertIs(True, row['State'])
        self.assertEqual(['az1', 'gpu'], row['Labels'])
        self.assertEqual('2026-01-02T03:04:05Z', row['Last heartbeat'])

        status, out, _err = self.run_cli('hosts', '-f', 'value',
                                         '-c', 'Host', '-c', 'Cache size')
        self.assertEqual('cmp1 1024\n', out)

    def test_images(self):
        self.client.answers['list_images'] = [IMAGE]
        status, out, _err = self.run_cli('images')
        self.assertEqual(0, status)
        self.assertIn('3.0 GiB', out)
        self.assertIn('labels: az1', out)
        [row] = self.run_json('images')
        self.assertEqual(3 * GiB, row['Size'])
        self.assertEqual({'hosts': [], 'labels': ['az1']}, row['Targets'])
        self.assertEqual((None, 0, None), (row['Error'], row['Failures'],
                                           row['Next try']))

    def test_images_and_status_show_the_services_failures(self):
        failing = dict(IMAGE, image_id='img-2', error='hash mismatch',
                       failures=3, failed_at='2026-01-02T03:04:05Z',
                       retry_at='2026-01-02T03:08:05Z', retrying=False)
        self.client.answers['list_images'] = [IMAGE, failing]
        status, out, _err = self.run_cli('images')
        self.assertEqual(0, status)
        self.assertIn('hash mismatch', out)
        self.assertIn('2026-01-02 03:08:05 (', out)
        rows = self.run_json('images')
        self.assertEqual(('hash mismatch', 3, '2026-01-02T03:08:05Z'), (
            rows[1]['Error'], rows[1]['Failures'], rows[1]['Next try']))

        self.client.answers['get_status'] = {
            'hosts': {'total': 1, 'up': 1, 'down': 0},
            'images': [dict(IMAGE, live_targets=1, counts={'waiting': 1}),
                       dict(failing, live_targets=1,
                            counts={'waiting': 1})]}
        status, out, _err = self.run_cli('status')
        self.assertEqual(0, status)
        self.assertIn('precache-service cannot fetch 1 image(s): img-2; '
                      '"precache show IMAGE" says why.', out)
        lines = out.splitlines()
        self.assertEqual('3', lines[4].split('|')[-2].strip())
        rows = self.run_json('status')
        self.assertEqual([0, 3], [r['Service failures'] for r in rows])


class ImageCommandsTest(CLITestCase):

    def test_show_per_host_with_summary(self):
        self.client.answers['show_image'] = show_result([
            host('cmp1', 'cached', received=1000),
            host('cmp2', 'failed', reason='hash mismatch'),
            host('cmp3', targeted=False)])
        status, out, _err = self.run_cli('show', 'img-1')
        self.assertEqual(0, status)
        self.assertEqual([('show_image', {'image_id': 'img-1'})],
                         self.client.calls)
        self.assertIn('hash mismatch', out)
        self.assertIn('1000 B', out)
        self.assertIn('img-1 (ubuntu-24.04): 1/2 live target hosts done, '
                      '1 failed, 0 missing, 0 in progress, 0 waiting; '
                      '1000 B received', out)

        rows = self.run_json('show', 'img-1', '--targeted')
        self.assertEqual(['cmp1', 'cmp2'], [r['Host'] for r in rows])
        self.assertEqual(2.5, rows[0]['Seconds'])

    def test_show_names_the_delta_base_and_sources(self):
        result = show_result([host('cmp1', 'cached', received=1000,
                                   source='delta', delta_base='img-0'),
                              host('cmp2', 'cached', received=9000,
                                   source='http')])
        result['image']['delta_base'] = 'img-0'
        self.client.answers['show_image'] = result
        status, out, _err = self.run_cli('show', 'img-1')
        self.assertEqual(0, status)
        self.assertIn('Offered as a delta against image img-0', out)
        rows = self.run_json('show', 'img-1')
        self.assertEqual([('delta', 'img-0', 1000), ('http', None, 9000)],
                         [(r['Source'], r['Base'], r['Bytes'])
                          for r in rows])

    def test_show_says_why_the_service_cannot_fetch_it(self):
        result = show_result([host('cmp1'), host('cmp2')])
        result['image'].update(error='hash mismatch', failures=1,
                               retry_at='2026-01-02T03:08:05Z',
                               retrying=False)
        self.client.answers['show_image'] = result
        status, out, _err = self.run_cli('show', 'img-1')
        self.assertEqual(0, status)
        self.assertIn('precache-service cannot fetch image img-1: hash '
                      'mismatch (failed 1 time, next try at 2026-01-02 '
                      '03:08:05 (', out)
        result['image']['retrying'] = True
        status, out, _err = self.run_cli('show', 'img-1')
        self.assertIn('precache-service is trying image img-1 again '
                      '(failed 1 time, last: hash mismatch)', out)
        # JSON: the host rows only, as before.
        rows = self.run_json('show', 'img-1')
        self.assertEqual(['cmp1', 'cmp2'], [r['Host'] for r in rows])

    def test_cache_with_targets_and_pin(self):
        fake_time = FakeTime()
        self.useFixture(fixtures.MockPatch('precache.cli.image.time',
                                           fake_time))
        self.client.answers['request_cache'] = dict(IMAGE, requested=True)
        data = self.run_json('cache', 'img-1', '--host', 'cmp-a-*',
                             '--host', 'cmp9', '--label', 'gpu',
                             '--pin-for', '12h')
        self.assertIs(True, data['Requested'])
        self.assertEqual(
            [('request_cache', {'image_id': 'img-1',
                                'hosts': ['cmp-a-*', 'cmp9'],
                                'labels': ['gpu'],
                                'pin_until': 1000.0 + 12 * 3600})],
            self.client.calls)

    def test_cache_everywhere_without_pin(self):
        self.client.answers['request_cache'] = IMAGE
        status, out, _err = self.run_cli('cache', 'img-1')
        self.assertEqual(0, status)
        self.assertIn('ubuntu-24.04', out)
        self.assertEqual({'image_id': 'img-1', 'hosts': [], 'labels': [],
                          'pin_until': None}, self.client.calls[0][1])

    def test_bad_duration_is_a_usage_error(self):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        exc = self.assertRaises(SystemExit, self.run_cli,
                                'cache', 'img-1', '--pin-for', '3x')
        self.assertEqual(2, exc.code)
        stderr.seek(0)
        self.assertIn("invalid duration '3x'", stderr.read())
        self.assertEqual([], self.client.calls)

    def test_uncache(self):
        self.client.answers['release'] = IMAGE
        data = self.run_json('uncache', 'img-1')
        self.assertEqual('img-1', data['Image ID'])
        self.assertEqual([('release', {'image_id': 'img-1'})],
                         self.client.calls)


class ErrorsTest(CLITestCase):

    COMMANDS = (('status',), ('hosts',), ('images',), ('show', 'i'),
                ('cache', 'i'), ('uncache', 'i'), ('watch', 'i'))

    def test_unreachable_service_exits_2_for_every_command(self):
        unreachable = errors.ServiceUnreachable(
            timeout=5, topic='precache-service', transport='rabbit://r:5672/')
        for argv in self.COMMANDS:
            self.client = FakeClient(**{method: unreachable for method in (
                'get_status', 'list_hosts', 'list_images', 'show_image',
                'request_cache', 'release')})
            status, out, err = self.run_cli(*argv)
            self.assertEqual(2, status, argv)
            self.assertEqual('', out)
            self.assertEqual(
                "precache: No answer from precache-service within 5 s "
                "(topic 'precache-service', transport rabbit://r:5672/). "
                "Check that the service runs and that transport_url and "
                "[rpc] service_topic match its configuration.\n", err)

    def test_unknown_image_exits_2(self):
        self.client.answers['show_image'] = errors.UnknownImage(
            image_id='nope')
        status, _out, err = self.run_cli('show', 'nope')
        self.assertEqual(2, status)
        self.assertIn('Image nope is not known to precache-service', err)

    def test_service_failure_exits_1(self):
        self.client.answers['list_hosts'] = errors.ServiceError(
            action='list hosts', exc_type='OperationalError',
            value='database is locked')
        status, _out, err = self.run_cli('hosts')
        self.assertEqual(1, status)
        self.assertIn('OperationalError: database is locked', err)
