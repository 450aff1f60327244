"""One run of the service's List -> Fetch -> Serve -> Distribute pipeline.

::

    listers ──► Listing ──► db.record_listing
                  │ (+ desired on-demand images no lister listed)
                  ▼
    per image:  fetcher.fetch ──► server.serve ──► distributor.distribute
                                                   (builds the meta, casts
                                                    when the decision changed)
    after the run:                                 distributor.reconcile
                                                   retirement.sweep
                                                   (server.retire of the
                                                    images no longer served)

An image that fails (its fetch or serve raises) is not tried again before
``[service] image_retry_backoff`` seconds, doubled after each further
failure in a row up to ``image_retry_backoff_max``; the count, the reason
and the next try are in the database for ``precache images``, ``show``
and ``watch``. A new version in the listing (see
:attr:`~precache.objects.image.ImageRecord.fingerprint`) and an on-demand
request (:meth:`Pipeline.process_request`) are tried at once.

The pipeline never casts: the distributor (the service's
:class:`~precache.service.convergence.Reconciler`) owns every ``cache``
cast, and never calls back into the pipeline.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import threading
import time

from oslo_log import log as logging

from precache.common import exception
from precache.common import plugin
from precache.db import api as db_api
from precache.objects import targets as targets_mod
from precache.service import delta
from precache.service import retirement

LOG = logging.getLogger(__name__)

#: The failure of an on-demand image no lister knows.
UNKNOWN_IMAGE = 'no lister knows this image'


@dataclasses.dataclass
class ImageOutcome(object):
    """What one run did with one image."""

    image_id: str
    distributed: bool = False
    meta: dict = None
    error: str = None
    #: The failure's code (an exception's ``code``, or ``unexpected``).
    code: str = None
    seconds: float = 0.0
    #: Not tried in this run: the image failed and its backoff runs
    #: (``error`` is then the last failure's).
    deferred: bool = False


class Pipeline(object):
    """Lists, fetches, serves and hands the images to the distributor.

    :param conf: the process's ConfigOpts.
    :param db: the :class:`~precache.db.api.StateDB` where listings,
        on-demand requests and per-image errors are kept.
    :param distributor: decides and sends the casts: ``distribute(context,
        image, sources, targets)`` returns ``(meta, cast)`` for one served
        image, ``reconcile(context)`` repairs what hosts lack after a run
        (see :class:`~precache.service.convergence.Reconciler`).
    :param listers: ImageLister plugins (default: ``[service] listers``).
    :param fetcher: the ImageFetcher (default: ``[service] fetcher``).
    :param server: the ImageServer (default: ``[service] server``).
    :param deltas: adds delta sources (see :mod:`precache.service.delta`);
        by default one when ``[delta] enabled``, else none.
    """

    def __init__(self, conf, db, distributor, listers=None, fetcher=None,
                 server=None, deltas=None):
        self.conf = conf
        self.db = db
        self.distributor = distributor
        self.listers = listers if listers is not None else [
            plugin.load_plugin('precache.listers', name, conf,
                               option='[service] listers')
            for name in conf.service.listers]
        if not self.listers:
            raise exception.ConfigurationError(
                reason='[service] listers names no lister: precache would '
                       'have nothing to pre-cache')
        self.fetcher = fetcher or plugin.load_plugin(
            'precache.fetchers', conf.service.fetcher, conf,
            option='[service] fetcher')
        self.server = server or plugin.load_plugin(
            'precache.servers', conf.service.server, conf,
            option='[service] server')
        if deltas is None and conf.delta.enabled:
            deltas = delta.DeltaPublisher(conf, db, self.server)
        self.deltas = deltas
        self._cancelled = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        #: Ids of the images being processed.
        self._busy = collections.Counter()
        self.retirement = retirement.Retirement(conf, db, self.server)

    def start(self):
        self.server.start()

    def stop(self):
        self.server.stop()

    def cancel(self):
        """Abort fetches in progress (the service is stopping).

        The fetcher removes its temporary files, so nothing half-written
        remains in the staging directory.
        """
        self._cancelled.set()
        self.fetcher.cancel()

    def wait_idle(self, timeout):
        """Wait until no image is being processed; False on timeout.

        After :meth:`cancel`, an image in progress ends at its fetcher's
        next chunk, its temporary file removed.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0,
                                       timeout)

    def run(self, context):
        """Run the pipeline once, then let the distributor reconcile.

        A failure with one image is logged with the image id, reason and
        next try, recorded in the database, and does not stop the others;
        a later run retries it once its backoff is over (see
        :meth:`backoff`), or at once when the listing shows a new version.

        :returns: list of :class:`ImageOutcome`.
        """
        listing = self.list_images()
        LOG.info('Pipeline run: %d image(s) listed', len(listing.images))
        self.db.record_listing(listing.images, listing.complete)
        now = db_api.utcnow()
        rows = {row['id']: row for row in self.db.list_images()}
        outcomes = []
        work = [(image, listing.targets.get(image.id))
                for image in listing.images]
        work.extend((image, None) for image in self._requested(
            {image.id for image in listing.images}, rows, now, outcomes))
        due = []
        for image, targets in work:
            row = rows.get(image.id)
            if self._backing_off(row, image.fingerprint, now):
                outcomes.append(self._deferred(row))
            else:
                due.append((image, targets, row))
        workers = self.conf.service.fetch_workers
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            outcomes.extend(pool.map(
                lambda item: self.process(context, *item), due))
        failed = [o for o in outcomes if o.error and not o.deferred]
        deferred = [o for o in outcomes if o.deferred]
        LOG.info('Pipeline run done: %d image(s) served, %d cast, '
                 '%d failed, %d waiting for their retry backoff',
                 len(outcomes) - len(failed) - len(deferred),
                 len([o for o in outcomes if o.distributed]), len(failed),
                 len(deferred))
        self.distributor.reconcile(context)
        self.retire()
        return outcomes

    def retire(self):
        """Retire the images no longer served.

        The server removes what it published for them (see
        :mod:`precache.service.retirement`).

        :returns: the ids of the images retired.
        """
        try:
            return self.retirement.sweep(self._unless_busy)
        except Exception:
            LOG.exception('Retiring the images no longer served failed; '
                          'tried again at the next run')
            return []

    @contextlib.contextmanager
    def _unless_busy(self, image_id):
        """Yield whether ``image_id`` is not being processed; keep it so."""
        with self._idle:
            yield not self._busy[image_id]

    def backoff(self, failures):
        """Seconds to wait after the ``failures``-th failure in a row."""
        opts = self.conf.service
        return min(opts.image_retry_backoff * 2 ** max(failures - 1, 0),
                   opts.image_retry_backoff_max)

    @staticmethod
    def _backing_off(row, fingerprint, now):
        """Whether the image of ``row`` waits for its retry backoff.

        :param fingerprint: the listed version's; another version than
            the one that failed is tried at once.
        """
        return bool(row and row['failures'] and row['retry_at'] and
                    row['retry_at'] > now and
                    row['failed_version'] == fingerprint)

    @staticmethod
    def _deferred(row):
        LOG.debug('Image %s is not tried before %s (failed %d time(s) in '
                  'a row): %s', row['id'], row['retry_at'], row['failures'],
                  row['error'])
        return ImageOutcome(image_id=row['id'], error=row['error'],
                            deferred=True)

    def list_images(self):
        """Ask every lister; merge their results by image id.

        :returns: a :class:`Listing`; ``complete`` is False when a lister
            failed (its images are then not taken as unlisted).
        """
        listing = Listing()
        merged = {}
        for lister in self.listers:
            try:
                records = list(lister.list())
            except Exception as exc:
                LOG.error('Lister %s failed, its images are left out of '
                          'this run: %s', lister.name, exc)
                listing.complete = False
                continue
            lister_targets = lister.targets()
            for record in records:
                known = merged.setdefault(record.id, record)
                if known is not record:
                    known.listed_by.extend(
                        n for n in record.listed_by
                        if n not in known.listed_by)
                listing.add_targets(record.id, lister_targets)
        listing.images = list(merged.values())
        return listing

    def lookup(self, image_id):
        """Return an image's record from the first lister knowing it."""
        for lister in self.listers:
            record = lister.get(image_id)
            if record is not None:
                return record
        return None

    def _requested(self, listed_ids, rows, now, outcomes):
        """Records of the desired on-demand images no lister listed.

        An image no lister knew at the last try is not looked up again
        before its backoff is over; its :class:`ImageOutcome` (deferred or
        failed) is appended to ``outcomes``.
        """
        records = []
        for row in rows.values():
            if (row['id'] in listed_ids or not row['requested'] or
                    not self.db.is_desired(row, now)):
                continue
            if self._backing_off(row, None, now):
                outcomes.append(self._deferred(row))
                continue
            record = self.lookup(row['id'])
            if record is None:
                outcomes.append(ImageOutcome(
                    image_id=row['id'], code=exception.NotFound.code,
                    error=self._failed(row['id'], UNKNOWN_IMAGE, None)))
                continue
            records.append(record)
        return records

    def _failed(self, image_id, error, version, exc_info=None):
        """Record a failure and log it once, with the next try.

        :param exc_info: the exception whose traceback is logged too.
        """
        row = self.db.record_image_failure(image_id, error, version,
                                           self.backoff)
        if row is None:
            LOG.error('Image %s failed: %s', image_id, error,
                      exc_info=exc_info)
        else:
            LOG.error('Image %s failed (%d time(s) in a row), next try '
                      'at %s UTC unless it changes or is requested: %s',
                      image_id, row['failures'],
                      row['retry_at'].isoformat(sep=' '), error,
                      exc_info=exc_info)
        return error

    def process_request(self, context, image_id):
        """Fetch, serve and distribute one on-demand image now.

        An image that failed is tried at once, whatever its backoff.
        """
        record = self.lookup(image_id)
        if record is None:
            self._failed(image_id, UNKNOWN_IMAGE, None)
            return None
        outcome = self.process(context, record, None)
        self.distributor.reconcile(context)
        return outcome

    def process(self, context, image, targets=None, row=None):
        """Fetch, serve and distribute one image.

        :param targets: the listers' targets for the image (None: every
            host).
        :param row: the image's database row, when the caller read it:
            its failures tell whether the try and its end are recorded
            (without it, they are, at the cost of a statement each).
        """
        with self._idle:
            self._in_flight += 1
            self._busy[image.id] += 1
        try:
            return self._process(context, image, targets, row)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._busy[image.id] -= 1
                if not self._busy[image.id]:
                    del self._busy[image.id]
                self._idle.notify_all()

    def _process(self, context, image, targets, row):
        started = time.monotonic()
        outcome = ImageOutcome(image_id=image.id)
        if self._cancelled.is_set():
            outcome.error = 'the service is stopping'
            return outcome
        failed_before = row is None or bool(row['failures'] or row['error'])
        if row is None or row['failures']:
            self.db.record_image_retry(image.id)
        exc_info = None
        try:
            path = None
            if self.server.needs_local_copy:
                path = self.fetcher.fetch(image)
            sources = self.server.serve(image, path)
            if self.deltas is not None:
                sources = self.deltas.add_sources(image, path, sources)
            outcome.meta, outcome.distributed = self.distributor.distribute(
                context, image, sources, targets)
        except exception.PrecacheException as exc:
            outcome.error = str(exc)
            outcome.code = exc.code
        except Exception as exc:
            outcome.error = '%s: %s' % (type(exc).__name__, exc)
            outcome.code = 'unexpected'
            exc_info = exc  # unexpected: its traceback is logged
        if outcome.error and self._cancelled.is_set():
            # Not the image's fault: tried again when the service is back.
            LOG.info('Image %s abandoned: the service is stopping',
                     image.id)
        elif outcome.error:
            self._failed(image.id, outcome.error, image.fingerprint,
                         exc_info=exc_info)
        elif failed_before:
            self.db.record_image_success(image.id)
        outcome.seconds = time.monotonic() - started
        return outcome


class Listing(object):
    """The merged result of the listers."""

    def __init__(self):
        self.images = []
        #: image id -> targets (None: every host)
        self.targets = {}
        self.complete = True

    def add_targets(self, image_id, targets):
        self.targets[image_id] = targets_mod.union(
            self.targets.get(image_id, targets_mod.NO_ONE), targets)
