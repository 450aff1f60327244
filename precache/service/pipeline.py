"""One run of the service's List -> Fetch -> Serve -> Distribute pipeline.

::

    listers ──► Listing ──► db.record_listing
                  │ (+ desired on-demand images no lister listed)
                  ▼
    per image:  fetcher.fetch ──► server.serve ──► distributor.distribute
                                                   (builds the meta, casts
                                                    when the decision changed)
    after the run:                                 distributor.reconcile

The pipeline never casts: the distributor (the service's
:class:`~precache.service.convergence.Reconciler`) owns every ``cache``
cast, and never calls back into the pipeline.
"""

import concurrent.futures
import dataclasses
import threading
import time

from oslo_log import log as logging

from precache.common import exception
from precache.common import plugin
from precache.db import api as db_api
from precache.objects import targets as targets_mod

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class ImageOutcome(object):
    """What one run did with one image."""

    image_id: str
    distributed: bool = False
    meta: dict = None
    error: str = None
    seconds: float = 0.0


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
    """

    def __init__(self, conf, db, distributor, listers=None, fetcher=None,
                 server=None):
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
        self._cancelled = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0

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

        A failure with one image is logged with the image id and reason,
        recorded in the database, and does not stop the others; the next
        run retries it.

        :returns: list of :class:`ImageOutcome`.
        """
        listing = self.list_images()
        LOG.info('Pipeline run: %d image(s) listed', len(listing.images))
        self.db.record_listing(listing.images, listing.complete)
        work = [(image, listing.targets.get(image.id))
                for image in listing.images]
        work.extend((image, None) for image in self._requested(
            {image.id for image in listing.images}))
        workers = self.conf.service.fetch_workers
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(
                lambda item: self.process(context, *item), work))
        failed = [o for o in outcomes if o.error]
        LOG.info('Pipeline run done: %d image(s) served, %d cast, '
                 '%d failed', len(outcomes) - len(failed),
                 len([o for o in outcomes if o.distributed]), len(failed))
        self.distributor.reconcile(context)
        return outcomes

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

    def _requested(self, listed_ids):
        """Records of the desired on-demand images no lister listed."""
        now = db_api.utcnow()
        records = []
        for row in self.db.list_images():
            if (row['id'] in listed_ids or not row['requested'] or
                    not self.db.is_desired(row, now)):
                continue
            record = self.lookup(row['id'])
            if record is None:
                self.db.record_image_error(
                    row['id'], 'no lister knows this image')
                continue
            records.append(record)
        return records

    def process_request(self, context, image_id):
        """Fetch, serve and distribute one on-demand image now."""
        record = self.lookup(image_id)
        if record is None:
            LOG.error('Requested image %s is unknown to every lister',
                      image_id)
            self.db.record_image_error(image_id,
                                       'no lister knows this image')
            return None
        outcome = self.process(context, record, None)
        self.distributor.reconcile(context)
        return outcome

    def process(self, context, image, targets=None):
        """Fetch, serve and distribute one image.

        :param targets: the listers' targets for the image (None: every
            host).
        """
        with self._idle:
            self._in_flight += 1
        try:
            return self._process(context, image, targets)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _process(self, context, image, targets):
        started = time.monotonic()
        outcome = ImageOutcome(image_id=image.id)
        if self._cancelled.is_set():
            outcome.error = 'the service is stopping'
            return outcome
        try:
            path = None
            if self.server.needs_local_copy:
                path = self.fetcher.fetch(image)
            sources = self.server.serve(image, path)
            outcome.meta, outcome.distributed = self.distributor.distribute(
                context, image, sources, targets)
        except exception.PrecacheException as exc:
            outcome.error = str(exc)
            LOG.error('Image %s skipped in this run: %s', image.id, exc)
        except Exception as exc:
            outcome.error = '%s: %s' % (type(exc).__name__, exc)
            LOG.exception('Image %s skipped in this run after an '
                          'unexpected error', image.id)
        if outcome.error:
            self.db.record_image_error(image.id, outcome.error)
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
