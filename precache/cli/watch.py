"""``precache watch IMAGE``: follow an image until every live target host
has it.

Exit status: 0 when every live target host has the image; 1 when nothing
is in progress or waiting any more but hosts failed or lost it (they are
listed with their reasons); 3 when ``--timeout`` ran out (the hosts not
done are listed); 4 when precache-service's last try of the image failed
and no live target host has it (the service's reason, failure count and
next try are printed; no host is listed); 2 for an unknown image or an
unreachable service.
"""

import time

from cliff import lister

from precache.cli import base
from precache.cli import columns
from precache.cli import image
from precache.cli import progress
from precache.cli import units

EXIT_FAILED = 1
EXIT_TIMEOUT = 3
EXIT_SERVICE_FAILED = 4

#: The hosts listed when the watch ends without success.
HOST_FIELDS = (
    ('Host', 'host', None),
    ('Status', 'status', None),
    ('Reason', 'reason', None),
    ('Attempts', 'attempts', None),
    ('Updated', 'updated_at', columns.TimestampColumn),
)


def settled(summary):
    """Whether no live target host is in progress or waiting any more."""
    return not summary.get('in_progress') and not summary.get('waiting')


def succeeded(summary):
    """Whether every live target host has the image."""
    return (settled(summary) and
            (summary.get('done') or 0) == (summary.get('live_targets') or 0))


def hosts_not_done(result, statuses=None):
    """Return the live target hosts without the image, as table rows.

    :param statuses: only hosts in one of these statuses (all by default);
        a host never asked shows as ``waiting``.
    """
    rows = []
    for host in progress.live_targets(result):
        status = host.get('status') or 'waiting'
        if status in progress.DONE:
            continue
        if statuses is None or status in statuses:
            rows.append(dict(host, status=status))
    return rows


class WatchImage(base.ServiceCommand, lister.Lister):
    """Follow an image until every live target host has it.

    Polls precache-service and draws a progress bar on stderr (hosts
    done/total, throughput, ETA; a plain line every few seconds when
    stderr is not a terminal). Exits 0 when every live target host has
    the image, 1 listing the failed hosts and their reasons, 3 when
    --timeout runs out, 4 when precache-service cannot fetch the image
    (its last try failed and no live target host has it; the reason and
    next try are printed), 2 for an unknown image or an unreachable
    service.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        image.add_image_argument(parser)
        parser.add_argument('--interval', type=units.positive_seconds,
                            default=5.0, metavar='SECONDS',
                            help='Seconds between two polls (default 5).')
        parser.add_argument('--timeout', type=units.parse_duration,
                            metavar='DURATION',
                            help='Give up after this long (30m, 2h or '
                                 'seconds) with exit status 3. Default: '
                                 'wait as long as hosts make progress.')
        return parser

    def take_action(self, parsed_args):
        display = progress.ProgressLine(self.app.stderr)
        try:
            result = self._follow(parsed_args, display)
        finally:
            display.close()
        return columns.table(HOST_FIELDS, self._conclude(parsed_args,
                                                         result))

    def _follow(self, parsed_args, display):
        """Poll until success, failure or the deadline.

        :returns: the last ``show_image`` result; ``exit_code`` is set.
        """
        tracker = progress.Progress()
        start = time.monotonic()
        deadline = (start + parsed_args.timeout
                    if parsed_args.timeout else None)
        while True:
            result = self.client.call('show_image',
                                      image_id=parsed_args.image_id)
            now = time.monotonic()
            tracker.update(now, result)
            display.show(now, tracker)
            summary = result.get('summary') or {}
            if (progress.service_failed(result.get('image') or {}) and
                    not summary.get('done')):
                # Nothing will arrive before the service's next try.
                self.exit_code = EXIT_SERVICE_FAILED
                return result
            if succeeded(summary):
                self.exit_code = 0
                return result
            if settled(summary) and (summary.get('failed') or
                                     summary.get('missing')):
                self.exit_code = EXIT_FAILED
                return result
            if deadline is not None and now >= deadline:
                self.exit_code = EXIT_TIMEOUT
                return result
            pause = parsed_args.interval
            if deadline is not None:
                pause = min(pause, deadline - now)
            time.sleep(pause)

    def _conclude(self, parsed_args, result):
        """Say how the watch ended; return the hosts to list."""
        summary = result.get('summary') or {}
        image_id = parsed_args.image_id
        total = summary.get('live_targets') or 0
        if self.exit_code == EXIT_FAILED:
            rows = hosts_not_done(result, ('failed', 'missing'))
            self._say('image %s failed on %d of %d live target hosts:'
                      % (image_id, len(rows), total))
        elif self.exit_code == EXIT_SERVICE_FAILED:
            rows = []
            self._say(progress.describe_service_failure(
                image_id, result.get('image') or {}))
        elif self.exit_code == EXIT_TIMEOUT:
            rows = hosts_not_done(result)
            self._say('timed out after %s; %d of %d live target hosts do '
                      'not have image %s yet: %s' % (
                          units.format_duration(parsed_args.timeout),
                          len(rows), total, image_id,
                          ', '.join(row['host'] for row in rows)))
        else:
            rows = []
            if total:
                self._say('image %s is on all %d live target hosts.'
                          % (image_id, total))
            else:
                self._say('image %s has no live target host: nothing to '
                          'wait for.' % image_id)
        return rows

    def _say(self, text):
        self.app.stderr.write('precache: %s\n' % text)
