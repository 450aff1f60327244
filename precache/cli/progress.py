"""Progress of one image across the hosts: counts, throughput, ETA, the
service's own failure with the image, and the one-line display of
``precache watch``."""

from precache.cli import columns
from precache.cli import units
from precache.objects import states

#: Per-host statuses that mean the image is there.
DONE = states.PRESENT
#: Per-host statuses that mean a download is under way.
IN_PROGRESS = states.IN_PROGRESS


def describe_summary(summary):
    """Return one sentence for the ``summary`` of ``show_image``."""
    counts = {key: summary.get(key) or 0
              for key in ('done', 'live_targets', 'failed', 'missing',
                          'in_progress', 'waiting')}
    counts['received'] = units.format_bytes(summary.get('bytes') or 0)
    return ('%(done)d/%(live_targets)d live target hosts done, '
            '%(failed)d failed, %(missing)d missing, %(in_progress)d in '
            'progress, %(waiting)d waiting; %(received)s received' % counts)


def service_failed(image):
    """Whether precache-service's last try of ``image`` failed.

    :param image: an image dict of ``list_images`` or ``show_image``; a
        service older than these fields never failed by this test.
    """
    return bool(image.get('failures')) and not image.get('retrying')


def describe_service_failure(image_id, image):
    """Return a sentence on precache-service's failures with the image.

    ``precache-service cannot fetch image X: <reason> (failed 3 times,
    next try at ...)``, or while it tries again ``precache-service is
    trying image X again (failed 3 times, last: <reason>)``; None when
    the image has not failed.
    """
    failures = image.get('failures') or 0
    if not failures:
        return None
    times = '%d time%s' % (failures, '' if failures == 1 else 's')
    if image.get('retrying'):
        return ('precache-service is trying image %s again (failed %s, '
                'last: %s)' % (image_id, times, image.get('error')))
    next_try = ''
    if image.get('retry_at'):
        next_try = ', next try at %s UTC' % columns.TimestampColumn(
            image['retry_at']).human_readable()
    return 'precache-service cannot fetch image %s: %s (failed %s%s)' % (
        image_id, image.get('error'), times, next_try)


def live_targets(result):
    """Return the host dicts of ``show_image`` that are up and targeted."""
    return [host for host in result.get('hosts') or ()
            if host.get('targeted') and host.get('up')]


def remaining_bytes(result):
    """Estimate the bytes still to travel to the live target hosts.

    Hosts in progress or waiting count for the image size less what they
    received; failed and missing hosts are not progressing and do not
    count. None when the image size is unknown.
    """
    size = (result.get('image') or {}).get('size')
    if not size:
        return None
    remaining = 0
    for host in live_targets(result):
        status = host.get('status')
        if status in IN_PROGRESS:
            remaining += max(0, size - (host.get('bytes') or 0))
        elif status is None:
            remaining += size
    return remaining


class Progress(object):
    """Throughput and ETA from successive ``show_image`` results.

    The throughput is the growth of ``summary['bytes']`` between two
    polls, smoothed exponentially (``smoothing`` is the weight of the
    newest sample).
    """

    def __init__(self, smoothing=0.5):
        self.smoothing = smoothing
        self.rate = None
        self.summary = {}
        self.remaining = None
        self._last = None

    def update(self, now, result):
        """Take a new ``show_image`` result polled at ``now`` (seconds)."""
        self.summary = result.get('summary') or {}
        received = self.summary.get('bytes') or 0
        if self._last is not None:
            then, before = self._last
            if now > then:
                sample = max(0, received - before) / (now - then)
                self.rate = sample if self.rate is None else (
                    self.smoothing * sample +
                    (1 - self.smoothing) * self.rate)
        self._last = (now, received)
        self.remaining = remaining_bytes(result)

    @property
    def eta(self):
        """Seconds until the live targets are done, or None if unknown."""
        if self.remaining is None or not self.rate:
            return None
        return self.remaining / self.rate

    def describe(self):
        """Return ``7/12 hosts, 1 failed, 45.2 MiB/s, ETA 1m20s``."""
        summary = self.summary
        parts = ['%d/%d hosts' % (summary.get('done') or 0,
                                  summary.get('live_targets') or 0)]
        for key in ('failed', 'missing'):
            if summary.get(key):
                parts.append('%d %s' % (summary[key], key))
        if self.rate is not None:
            parts.append('%s/s' % units.format_bytes(self.rate))
        eta = self.eta
        parts.append('ETA %s' % (units.format_duration(eta)
                                 if eta is not None else '?'))
        return ', '.join(parts)

    def bar(self, width):
        """Return ``[#####.....]``: the share of live targets done."""
        total = self.summary.get('live_targets') or 0
        done = self.summary.get('done') or 0
        filled = width * done // total if total else 0
        return '[%s%s]' % ('#' * filled, '.' * (width - filled))


class ProgressLine(object):
    """Draws a :class:`Progress` on ``stream`` (stderr).

    On a terminal, a bar redrawn in place at every poll; otherwise a plain
    line per poll, at most one every ``min_interval`` seconds, so that logs
    of scripted runs stay readable.
    """

    def __init__(self, stream, min_interval=5.0, width=30):
        self.stream = stream
        self.min_interval = min_interval
        self.width = width
        self.tty = stream.isatty()
        self._last_line = None
        self._drawn = False

    def show(self, now, progress):
        """Draw ``progress`` as polled at ``now`` (monotonic seconds)."""
        if self.tty:
            self.stream.write('\r%s %s\x1b[K' % (progress.bar(self.width),
                                                 progress.describe()))
            self._drawn = True
        elif (self._last_line is None or
                now - self._last_line >= self.min_interval):
            self.stream.write(progress.describe() + '\n')
            self._last_line = now
        else:
            return
        self.stream.flush()

    def close(self):
        """End the redrawn line so that what follows starts afresh."""
        if self._drawn:
            self.stream.write('\n')
            self.stream.flush()
            self._drawn = False
