"""What precache-all-in-one prints: progress, the result, what next.

The daemons' logs go to a file in the work directory (see
:mod:`precache.cmd.all_in_one`); stdout gets a short story of the run,
one table per image (a row per host) and a few commands to try next, in
about 25 lines for the default three hosts.
"""

import os
import sys
import threading

from precache.cli import units
from precache.objects import image as image_mod
from precache.objects import states

#: The progress shows each host's report up to this many reports; a
#: bigger run only counts them (the tables show them all).
MAX_REPORT_LINES = 12


class ProgressView(object):
    """Prints the all-in-one run as it goes.

    Reports arrive on RPC threads, possibly before the fan-out was
    announced: they are held until :meth:`waiting` and printed after it.

    :param work_dir: the run's work directory (paths are shown relative
        to it).
    :param log_file: where the daemons' logs go (None: the screen).
    :param out: the stream printed to.
    """

    def __init__(self, work_dir, log_file=None, out=None):
        self.work_dir = work_dir
        self.log_file = log_file
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._held = []
        self._expected = None
        self._shown = set()

    def _print(self, text=''):
        self.out.write(text + '\n')
        self.out.flush()

    def started(self, hosts):
        self._print('precache all-in-one: %d compute hosts in %s' % (
            len(hosts), self.work_dir))
        if self.log_file:
            self._print('  daemon logs: %s' % self.log_file)

    def step(self, text):
        self._print('- ' + text)

    def images(self, images_dir, image_ids, sample):
        if sample:
            path = os.path.join(images_dir, image_ids[0])
            self.step('sample qcow2 image made with qemu-img: %s (%s)' % (
                image_ids[0], units.format_bytes(os.path.getsize(path))))
        else:
            self.step('%d image(s) in %s' % (len(image_ids), images_dir))

    def served(self, outcome):
        if outcome.error:
            self.step('image %s NOT distributed: %s' % (outcome.image_id,
                                                        outcome.error))
            return
        source = outcome.meta['sources'][0]
        self.step('image %s served (%s, %s) at %s' % (
            outcome.image_id, source.get('compression'),
            units.format_bytes(source.get('size')),
            source.get('url', source['method'])))

    def waiting(self, expected):
        """Announce the reports awaited; print those already in."""
        with self._lock:
            self._expected = set(expected)
            self.step('fanned out: waiting for %d report(s)' % len(expected))
            held, self._held = self._held, []
            for host, image_id, payload in held:
                self._show_report(host, image_id, payload)

    def report(self, host, image_id, payload):
        """A host's final report of an image (from any thread)."""
        with self._lock:
            if self._expected is None:
                self._held.append((host, image_id, payload))
            else:
                self._show_report(host, image_id, payload)

    def _show_report(self, host, image_id, payload):
        if ((host, image_id) not in self._expected or
                (host, image_id) in self._shown):
            return
        self._shown.add((host, image_id))
        shown, total = len(self._shown), len(self._expected)
        if total > MAX_REPORT_LINES:
            if shown == total:
                self._print('    %d/%d reports in' % (shown, total))
            return
        self._print('    [%d/%d] %s: %s in %.2f s' % (
            shown, total, host, payload['status'],
            payload.get('seconds', 0)))

    def result(self, outcomes, expected, reports, status, elapsed):
        """Print one table per image; return True if every host has it.

        :param outcomes: the pipeline run's ImageOutcomes.
        :param expected: the (host, image id) pairs that should report.
        :param reports: (host, image id) -> the final report's payload.
        :param status: the service's ``get_status`` answer.
        :param elapsed: seconds from the pipeline run to the last report.
        """
        ok = bool(outcomes) and all(o.distributed for o in outcomes)
        counts = {image['image_id']: image for image in status['images']}
        for image_id in sorted({image for _host, image in expected}):
            self._print()
            self._print('image %s: %s; %d host(s) up of %d' % (
                image_id, _counts(counts.get(image_id)),
                status['hosts']['up'], status['hosts']['total']))
            rows = [('HOST', 'STATUS', 'SECONDS',
                     'LANDED (in hosts/HOST/instances)')]
            for host in sorted(h for h, i in expected if i == image_id):
                report = reports.get((host, image_id))
                if report is None:
                    ok = False
                    rows.append((host, 'no report', '-', ''))
                    continue
                ok = ok and report['status'] in states.PRESENT
                rows.append((host, report['status'],
                             '%.2f' % report.get('seconds', 0),
                             report.get('reason') or
                             self._describe(host, image_id)))
            self._table(rows)
        self._print()
        self._print('%s in %.1f s' % ('all hosts cached every image' if ok
                                      else 'FAILED', elapsed))
        return ok

    def next_steps(self):
        hosts_dir = os.path.join(self.work_dir, 'hosts')
        self._print()
        self._print('What to try next:')
        self._print('  ls -ls %s/*/instances/_base   # raw and sparse, as '
                    'Nova wants them' % hosts_dir)
        if self.log_file:
            self._print('  less %s   # what the service and agents did' %
                        self.log_file)
        self._print('  precache-all-in-one --hosts 10 --images-dir DIR   # '
                    'your images (file name = image id)')
        self._print('  README.md, "Running it": the daemons on real hosts')

    def _table(self, rows):
        widths = [max(len(str(row[i])) for row in rows)
                  for i in range(len(rows[0]) - 1)]
        for row in rows:
            self._print('  '.join(str(cell).ljust(width) for cell, width
                                  in zip(row, widths)) + '  ' + str(row[-1]))

    def _describe(self, host, image_id):
        instances = os.path.join(self.work_dir, 'hosts', host, 'instances')
        base = os.path.join(instances, '_base',
                            image_mod.nova_cache_name(image_id))
        try:
            stat = os.stat(base)
        except OSError:
            return ''
        return '%s (%s, %s allocated, mode %o)' % (
            os.path.relpath(base, instances),
            units.format_bytes(stat.st_size),
            units.format_bytes(stat.st_blocks * 512), stat.st_mode & 0o777)


def _counts(image):
    """``cached 3 of 3 live target hosts`` from a status image entry."""
    if image is None:
        return 'unknown to the service'
    counts = ', '.join('%s %d' % item for item in
                       sorted(image['counts'].items()) if item[1])
    return '%s of %d live target host(s)' % (counts or 'nothing yet',
                                             image['live_targets'])
