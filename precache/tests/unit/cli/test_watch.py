"""``precache watch``: progress display and exit statuses."""

import io
import json

import fixtures

from precache.cli import errors
from precache.cli import progress
from precache.tests.unit.cli import test_commands as test_cli
from precache.tests.unit.cli.test_commands import host
from precache.tests.unit.cli.test_commands import Replies
from precache.tests.unit.cli.test_commands import show_result


class WatchTest(test_cli.CLITestCase):

    def setUp(self):
        super().setUp()
        self.time = test_cli.FakeTime()
        self.useFixture(fixtures.MockPatch('precache.cli.watch.time',
                                           self.time))

    def watch(self, results, *options):
        self.client.answers['show_image'] = Replies(results)
        return self.run_cli('watch', 'img-1', *options)

    def test_exit_0_once_every_live_target_has_it(self):
        status, out, err = self.watch([
            show_result([host('cmp1', 'downloading', received=200),
                         host('cmp2'), host('down', up=False)]),
            show_result([host('cmp1', 'cached', received=1000),
                         host('cmp2', 'downloading', received=500),
                         host('down', up=False)]),
            show_result([host('cmp1', 'cached', received=1000),
                         host('cmp2', 'existing'),
                         host('down', up=False)]),
        ], '--interval', '10')
        self.assertEqual(0, status, err)
        self.assertEqual(3, len(self.client.calls))
        self.assertEqual([10.0, 10.0], self.time.sleeps)
        self.assertEqual('', out.strip())  # no host to list
        lines = err.splitlines()
        # Not a terminal: a plain line per poll (polls are 10 s apart).
        self.assertEqual('0/2 hosts, ETA ?', lines[0])
        # 1300 bytes in 10 s; remaining: cmp2 needs 500 more.
        self.assertEqual('1/2 hosts, 130 B/s, ETA 4s', lines[1])
        self.assertEqual(
            'precache: image img-1 is on all 2 live target hosts.',
            lines[-1])

    def test_exit_1_lists_failed_and_missing_hosts(self):
        status, out, err = self.watch([
            show_result([host('cmp1', 'downloading'),
                         host('cmp2', 'cached')]),
            show_result([host('cmp1', 'failed', reason='disk full'),
                         host('cmp2', 'cached'),
                         host('cmp3', 'missing', reason='deleted by Nova'),
                         host('off', 'failed', targeted=False)]),
        ], '-f', 'value', '-c', 'Host', '-c', 'Reason')
        self.assertEqual(1, status)
        self.assertEqual('cmp1 disk full\ncmp3 deleted by Nova\n', out)
        self.assertIn('precache: image img-1 failed on 2 of 3 live target '
                      'hosts:', err)

    def test_failures_wait_for_hosts_still_in_progress(self):
        status, _out, _err = self.watch([
            show_result([host('cmp1', 'failed', reason='x'),
                         host('cmp2', 'pending')]),
            show_result([host('cmp1', 'failed', reason='x'),
                         host('cmp2', 'cached')]),
        ])
        self.assertEqual(1, status)
        self.assertEqual(2, len(self.client.calls))

    def test_exit_3_on_timeout_names_hosts_not_done(self):
        status, out, err = self.watch([
            show_result([host('cmp1', 'cached'), host('cmp2', 'pending'),
                         host('cmp3')]),
        ], '--interval', '4', '--timeout', '10')
        self.assertEqual(3, status)
        self.assertEqual([4.0, 4.0, 2.0], self.time.sleeps)
        self.assertEqual(4, len(self.client.calls))
        self.assertIn('precache: timed out after 10s; 2 of 3 live target '
                      'hosts do not have image img-1 yet: cmp2, cmp3', err)
        self.assertIn('cmp2', out)
        self.assertIn('waiting', out)
        self.assertNotIn('cmp1', out)

    def failing(self, result, failures=3, retrying=False):
        """``result`` of an image precache-service failed to fetch."""
        result['image'].update(
            error='Image img-1: sha512 of the downloaded bytes is x, '
                  'expected y; the download was discarded',
            failures=failures, failed_at='2026-01-02T03:04:05Z',
            retry_at='2026-01-02T03:08:05Z', retrying=retrying)
        return result

    def test_exit_4_at_once_when_the_service_cannot_fetch_it(self):
        status, out, err = self.watch([
            self.failing(show_result([host('cmp1'), host('cmp2')]))])
        self.assertEqual(4, status)
        self.assertEqual(1, len(self.client.calls))
        self.assertEqual([], self.time.sleeps)
        self.assertEqual('', out.strip())  # no host to list
        self.assertIn(
            'precache: precache-service cannot fetch image img-1: Image '
            'img-1: sha512 of the downloaded bytes is x, expected y; the '
            'download was discarded (failed 3 times, next try at '
            '2026-01-02 03:08:05 (', err)
        status, out, _err = self.watch([
            self.failing(show_result([host('cmp1')]), failures=1)],
            '-f', 'json')
        self.assertEqual(4, status)
        self.assertEqual([], json.loads(out))
        self.assertIn('(failed 1 time, next try at', _err)

    def test_exit_4_after_polls_when_the_service_fails_later(self):
        status, _out, err = self.watch([
            show_result([host('cmp1'), host('cmp2')]),
            self.failing(show_result([host('cmp1'), host('cmp2')]),
                         retrying=True),
            self.failing(show_result([host('cmp1'), host('cmp2')]))],
            '--interval', '2')
        self.assertEqual(4, status)
        # The service's retry in progress is waited for.
        self.assertEqual(3, len(self.client.calls))
        self.assertEqual([2.0, 2.0], self.time.sleeps)
        self.assertIn('cannot fetch image img-1', err)

    def test_a_failing_service_with_hosts_done_is_followed(self):
        # The hosts that have an earlier version can still get this one.
        status, _out, err = self.watch([
            self.failing(show_result([host('cmp1', 'cached'),
                                      host('cmp2', 'downloading')])),
            self.failing(show_result([host('cmp1', 'cached'),
                                      host('cmp2', 'cached')]))])
        self.assertEqual(0, status, err)
        self.assertEqual(2, len(self.client.calls))

    def test_exit_2_for_an_unknown_image(self):
        self.client.answers['show_image'] = errors.UnknownImage(
            image_id='img-1')
        status, out, err = self.run_cli('watch', 'img-1')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        self.assertIn('Image img-1 is not known to precache-service', err)

    def test_no_live_target_is_nothing_to_wait_for(self):
        status, _out, err = self.watch([
            show_result([host('down', up=False)])])
        self.assertEqual(0, status)
        self.assertIn('no live target host', err)

    def test_bad_interval_is_a_usage_error(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))
        exc = self.assertRaises(SystemExit, self.run_cli, 'watch', 'img-1',
                                '--interval', '0')
        self.assertEqual(2, exc.code)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class ProgressTest(test_cli.CLITestCase):

    def test_throughput_is_smoothed_and_eta_uses_remaining_bytes(self):
        tracker = progress.Progress(smoothing=0.5)
        tracker.update(0, show_result([host('a', 'downloading'),
                                       host('b')], size=1000))
        self.assertIsNone(tracker.rate)
        self.assertEqual(2000, tracker.remaining)
        self.assertIsNone(tracker.eta)
        tracker.update(2, show_result([host('a', 'downloading',
                                            received=400),
                                       host('b')], size=1000))
        self.assertEqual(200, tracker.rate)
        self.assertEqual(1600, tracker.remaining)
        self.assertEqual(8, tracker.eta)
        tracker.update(4, show_result([host('a', 'cached', received=1000),
                                       host('b')], size=1000))
        self.assertEqual(250, tracker.rate)  # (300 + 200) / 2
        self.assertEqual(1000, tracker.remaining)
        self.assertEqual('[#####.....]', tracker.bar(10))

    def test_unknown_size_has_no_eta(self):
        tracker = progress.Progress()
        tracker.update(0, show_result([host('a', 'downloading')], size=None))
        tracker.update(1, show_result([host('a', 'downloading',
                                            received=10)], size=None))
        self.assertEqual(10, tracker.rate)
        self.assertIsNone(tracker.eta)
        self.assertEqual('0/1 hosts, 10 B/s, ETA ?', tracker.describe())

    def test_terminal_gets_a_bar_redrawn_in_place(self):
        stream = FakeTerminal()
        line = progress.ProgressLine(stream, width=4)
        tracker = progress.Progress()
        tracker.update(0, show_result([host('a', 'cached'), host('b')]))
        line.show(0, tracker)
        line.show(0.5, tracker)
        line.close()
        self.assertEqual('\r[##..] 1/2 hosts, ETA ?\x1b[K' * 2 + '\n',
                         stream.getvalue())

    def test_plain_lines_at_most_every_few_seconds(self):
        stream = io.StringIO()
        line = progress.ProgressLine(stream, min_interval=5)
        tracker = progress.Progress()
        tracker.update(0, show_result([host('a', 'failed')]))
        for now in (0, 2, 4, 5, 6):
            line.show(now, tracker)
        line.close()
        self.assertEqual('0/1 hosts, 1 failed, ETA ?\n' * 2,
                         stream.getvalue())
