"""One run of the service's List -> Fetch -> Serve -> Distribute pipeline."""

import calendar
import concurrent.futures
import dataclasses
import threading
import time

from oslo_log import log as logging

from precache.common import exception
from precache.common import plugin
from precache.db import api as db_api
from precache.objects import meta as meta_mod

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
    """Lists, fetches, serves and distributes the images to pre-cache.

    :param conf: the process's ConfigOpts.
    :param agent_api: an :class:`precache.agent.rpcapi.AgentAPI`.
    :param state: the service's
        :class:`~precache.service.state.StateKeeper`. Without one (tools,
        tests) every run fans every image out again.
    """

    def __init__(self, conf, agent_api, listers=None, fetcher=None,
                 server=None, state=None):
        self.conf = conf
        self.agent_api = agent_api
        self.state = state
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
        """Run the pipeline once.

        A failure with one image is logged with the image id and reason and
        does not stop the others; the next run retries it. With a state,
        images whose meta did not change are not cast again, and a
        convergence pass follows.

        :returns: list of :class:`ImageOutcome`.
        """
        listing = self.list_images()
        LOG.info('Pipeline run: %d image(s) listed', len(listing.images))
        work = [(image, listing.targets.get(image.id))
                for image in listing.images]
        if self.state is not None:
            self.state.db.record_listing(listing.images, listing.complete)
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
        if self.state is not None:
            self.state.reconciler.reconcile(context)
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
        for row in self.state.db.list_images():
            if (row['id'] in listed_ids or not row['requested'] or
                    not self.state.db.is_desired(row, now)):
                continue
            record = self.lookup(row['id'])
            if record is None:
                self.state.db.record_image_error(
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
            self.state.db.record_image_error(
                image_id, 'no lister knows this image')
            return None
        outcome = self.process(context, record, None)
        self.state.reconciler.reconcile(context)
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
            if self.state is None:
                outcome.meta = meta_mod.build(image, sources, targets)
                self.agent_api.cache(context, image.id, outcome.meta)
                outcome.distributed = True
            else:
                self._distribute(context, image, sources, targets, outcome)
        except exception.PrecacheException as exc:
            outcome.error = str(exc)
            LOG.error('Image %s skipped in this run: %s', image.id, exc)
        except Exception as exc:
            outcome.error = '%s: %s' % (type(exc).__name__, exc)
            LOG.exception('Image %s skipped in this run after an '
                          'unexpected error', image.id)
        if outcome.error and self.state is not None:
            self.state.db.record_image_error(image.id, outcome.error)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _distribute(self, context, image, sources, lister_targets,
                    outcome):
        """Build the meta; fan it out when it differs from the last one."""
        row = self.state.db.get_image(image.id)
        # The database gives back a request for every host (None) as {}.
        targets = _union_targets(
            lister_targets if row['listed'] else _NO_ONE,
            (row['request_targets'] or None) if row['requested']
            else _NO_ONE)
        pin_until = (calendar.timegm(row['pinned_until'].timetuple())
                     if row['pinned_until'] else None)
        meta = meta_mod.build(image, sources, targets, pin_until)
        previous = row['meta']
        if previous and _same_decision(previous, meta):
            outcome.meta = previous
            return
        self.state.db.record_served(image.id, meta)
        row.update(meta=meta, generation=meta['generation'],
                   targets=meta['targets'])
        self.state.reconciler.distribute(context, row)
        outcome.meta = meta
        outcome.distributed = True


class Listing(object):
    """The merged result of the listers."""

    def __init__(self):
        self.images = []
        #: image id -> targets (None: every host)
        self.targets = {}
        self.complete = True

    def add_targets(self, image_id, targets):
        self.targets[image_id] = _union_targets(
            self.targets.get(image_id, _NO_ONE), targets)


#: Targets selecting no host (the neutral element of the union).
_NO_ONE = object()


def _union_targets(first, second):
    """Union of two targets; None (every host) absorbs everything."""
    if first is None or second is None:
        return None
    if first is _NO_ONE:
        return second
    if second is _NO_ONE:
        return first
    return {key: sorted(set(first.get(key) or []) |
                        set(second.get(key) or []))
            for key in ('hosts', 'labels')}


def _same_decision(old, new):
    """Whether two metas ask for the same thing (generation aside)."""
    keys = set(old) | set(new)
    keys.discard('generation')
    return all(old.get(k) == new.get(k) for k in keys)
