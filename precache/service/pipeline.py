"""One run of the service's List -> Fetch -> Serve -> Distribute pipeline."""

import concurrent.futures
import dataclasses
import threading
import time

from oslo_log import log as logging

from precache import exception
from precache import meta as meta_mod
from precache import plugin

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
    """

    def __init__(self, conf, agent_api, listers=None, fetcher=None,
                 server=None):
        self.conf = conf
        self.agent_api = agent_api
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

    def run(self, context):
        """Run the pipeline once.

        A failure with one image is logged with the image id and reason and
        does not stop the others; the next run retries it.

        :returns: list of :class:`ImageOutcome`.
        """
        images = self.list_images()
        LOG.info('Pipeline run: %d image(s) listed', len(images))
        workers = self.conf.service.fetch_workers
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(
                lambda image: self.process(context, image), images))
        failed = [o for o in outcomes if o.error]
        LOG.info('Pipeline run done: %d distributed, %d failed',
                 len(outcomes) - len(failed), len(failed))
        return outcomes

    def list_images(self):
        """Ask every lister; merge their results by image id."""
        merged = {}
        for lister in self.listers:
            try:
                records = list(lister.list())
            except Exception as exc:
                LOG.error('Lister %s failed, its images are left out of '
                          'this run: %s', lister.name, exc)
                continue
            for record in records:
                known = merged.setdefault(record.id, record)
                if known is not record:
                    known.listed_by.extend(
                        n for n in record.listed_by
                        if n not in known.listed_by)
        return list(merged.values())

    def process(self, context, image):
        """Fetch, serve and distribute one image."""
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
            outcome.meta = meta_mod.build(image, sources)
            self.agent_api.cache(context, image.id, outcome.meta)
            outcome.distributed = True
        except exception.PrecacheException as exc:
            outcome.error = str(exc)
            LOG.error('Image %s skipped in this run: %s', image.id, exc)
        except Exception as exc:
            outcome.error = '%s: %s' % (type(exc).__name__, exc)
            LOG.exception('Image %s skipped in this run after an '
                          'unexpected error', image.id)
        outcome.seconds = time.monotonic() - started
        return outcome
