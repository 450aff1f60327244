"""The agent's RPC endpoint and periodic tasks."""

import random
import threading
import time

from oslo_log import log as logging
import oslo_messaging as messaging

from precache.agent import chunk_indexer
from precache.agent import download
from precache.agent import rpcapi
from precache.agent import slots as slots_mod
from precache.agent import wanted
from precache.common import exception
from precache.common import plugin
from precache.common import rpc
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import signing
from precache.objects import states
from precache.objects import targets as targets_mod
from precache import version

LOG = logging.getLogger(__name__)

# What AgentManager._claim found.
_IN_PROGRESS = 'in progress'
_BUSY = 'busy'


class AgentManager(object):
    """Turns ``cache(image_id, meta)`` casts into images in the store.

    Nothing received is trusted for where it came from: a cast (and each
    entry of the ``desired`` answer) is checked first -- the image id's
    form, then the service's signature (:mod:`precache.objects.signing`),
    then the meta's schema -- and refused with a report (``code``
    ``invalid_image_id``, ``unsigned``, ``unknown_key``, ``bad_signature``
    or ``invalid_meta``) before any network or disk work.

    Endpoint methods run in oslo.messaging's thread pool and never wait
    there: :meth:`cache` hands a request to a thread of its own and
    returns. Requests for different images proceed in parallel (up to
    ``[agent] max_concurrent_downloads`` downloads at a time, up to
    ``max_queued_requests`` more waiting for a slot); a request beyond
    those is refused at once, reported ``failed`` with the code ``busy``
    (the service asks again after ``[service] busy_retry_delay``), unless
    its image is already in the store. A download that makes no progress
    gives up its slot (it parks, up to ``max_parked_downloads``), and slots
    go to the origins with the fewest downloads first (see
    :mod:`precache.agent.slots`). A request for an image already being
    cached is dropped, so an image is never downloaded twice at once.

    :param conf: the process's ConfigOpts.
    :param service_api: a :class:`precache.service.rpcapi.ServiceAPI` that
        receives reports and heartbeats.
    :param store: the ImageStore; by default the ``[agent] store`` plugin.
    :param downloader: the Downloader; by default one built from ``conf``.
    :param host: this agent's host name; ``[DEFAULT] host`` by default.
    :param verifier: the :class:`~precache.objects.signing.Verifier`; by
        default one built from ``[signing]``.
    :param indexer: the :class:`~precache.agent.chunk_indexer.Indexer` told
        of each image landed and of the average chunk size of each delta
        about to be downloaded; by default the one ``[chunk_index]`` asks
        for (None when disabled). It pauses while requests are in
        progress.
    :raises ConfigurationError: ``[signing]`` names no usable public key,
        or ``[chunk_index]`` no usable directory.
    """

    target = messaging.Target(version=rpcapi.AgentAPI.RPC_API_VERSION)

    def __init__(self, conf, service_api, store=None, downloader=None,
                 host=None, verifier=None, indexer=None):
        self.conf = conf
        self.host = host or conf.host
        self.service_api = service_api
        self.verifier = verifier or signing.verifier_from_conf(conf)
        self.store = store or plugin.load_plugin(
            'precache.stores', conf.agent.store, conf,
            option='[agent] store')
        self.downloader = downloader or download.Downloader(conf)
        self.wanted = wanted.WantedImages(conf.agent.wanted_expiry)
        self.slots = slots_mod.DownloadSlots.from_conf(conf)
        self._inflight_lock = threading.Condition()
        self._inflight = set()
        #: Set when the agent stops: downloads in progress are abandoned.
        self.stopping = threading.Event()
        self.indexer = indexer or chunk_indexer.Indexer.from_conf(
            conf, self.store, busy=self.busy)

    def busy(self):
        """Whether a request is in progress."""
        return bool(self._inflight)

    def cancel(self):
        """Abandon every request in progress (the agent is stopping).

        Downloads end within a fraction of a second, their temporary files
        are removed by the store, and each is reported ``failed`` with the
        code ``interrupted``; requests waiting for a slot or in their start
        delay do not start.
        """
        self.stopping.set()

    def wait_idle(self, timeout):
        """Wait until no request is in progress; False on timeout."""
        with self._inflight_lock:
            return self._inflight_lock.wait_for(lambda: not self._inflight,
                                                timeout)

    # RPC API ------------------------------------------------------------

    def cache(self, context, image_id, meta):
        """Cache one image (RPC cast, idempotent); returns at once."""
        self._handle(image_id, meta, report_existing=True, background=True)

    # Desired set ----------------------------------------------------------

    def sync_desired(self):
        """Ask the service for the desired set and cache what is lacking.

        Images already here are touched without a report (the heartbeat's
        inventory tells the service); the others are downloaded and
        reported like any cast.

        :returns: the number of images in the desired set.
        :raises: oslo.messaging errors when the service does not answer.
        """
        metas = self.service_api.desired(rpc.get_context(), self.host,
                                         list(self.conf.agent.labels))
        LOG.info('The service wants %d image(s) on this host', len(metas))
        for meta in metas:
            image = meta.get('image') if isinstance(meta, dict) else None
            image_id = image.get('id') if isinstance(image, dict) else None
            self._handle(image_id, meta, report_existing=False,
                         background=False)
        return len(metas)

    def sync_desired_until_done(self, stopped, retry_interval):
        """Call :meth:`sync_desired` until it works or ``stopped`` is set.

        Not retried when ``[upgrade_levels] service`` forbids the call:
        the agent then relies on the service's casts alone.
        """
        while not stopped.is_set():
            try:
                self.sync_desired()
                return True
            except exception.RPCVersionPinned as exc:
                LOG.warning('Not asking the service for the desired '
                            'images: %s Until then only its cache '
                            'requests reach this agent.', exc)
                return False
            except Exception as exc:
                LOG.warning('Could not get the desired images from the '
                            'service (%s); retrying in %ss', exc,
                            retry_interval)
                stopped.wait(retry_interval)
        return False

    def _check(self, image_id, meta):
        """Refuse what is not a meta the service signed for ``image_id``.

        :raises InvalidMeta: or one of its subclasses.
        """
        if not image_mod.is_valid_id(image_id):
            raise exception.InvalidImageId(
                image_id=image_mod.quote_id(image_id),
                limit=image_mod.MAX_ID_LENGTH)
        self.verifier.verify(meta, image_id)
        meta_mod.validate(meta)
        if meta['image']['id'] != image_id:
            raise exception.InvalidMeta(
                reason='image_id %s differs from meta image id %s'
                % (image_id, image_mod.quote_id(meta['image']['id'])))

    def _handle(self, image_id, meta, report_existing, background):
        """Validate a request and cache its image.

        :param background: run the request in a thread of its own and
            return at once; refuse it as busy when the agent already holds
            as many requests as it may. Otherwise (the desired set, in the
            agent's own thread) wait for a slot and cache it here.
        """
        try:
            self._check(image_id, meta)
        except exception.InvalidMeta as exc:
            quoted = image_mod.quote_id(image_id)
            LOG.error('Refusing cache request for image %s (%s): %s',
                      quoted, exc.code, exc)
            self._report(quoted, states.FAILED, code=exc.code,
                         reason=str(exc))
            return
        if not targets_mod.is_targeted(meta.get('targets'), self.host,
                                       self.conf.agent.labels):
            LOG.debug('Image %s is not meant for this host', image_id)
            return
        image = image_mod.ImageRecord.from_dict(meta['image'])
        if not self.wanted.add(image, meta):
            LOG.info('Ignoring a stale request for image %s', image_id)
            return
        claim = self._claim(image_id, slots_mod.origin_of(meta['sources']),
                            background)
        if claim is _IN_PROGRESS:
            LOG.info('Image %s is already being cached here', image_id)
            return
        if claim is _BUSY:
            # Answered here and now: a present image is only touched.
            self._cache(image, meta, report_existing, busy=True)
            return
        if not background:
            self._run(image, meta, report_existing, claim)
            return
        try:
            threading.Thread(target=self._run,
                             args=(image, meta, report_existing, claim),
                             name='precache-cache-%s' % image_id,
                             daemon=True).start()
        except BaseException:
            self._release(image_id, claim)
            raise

    # Work ---------------------------------------------------------------

    def _claim(self, image_id, origin, bounded):
        """Claim ``image_id`` for this thread; tell why not otherwise.

        :param origin: where the request downloads from first
            (:func:`~precache.agent.slots.origin_of`).
        :param bounded: refuse (busy) when the download slots' queue is
            full (see :meth:`~precache.agent.slots.DownloadSlots.admit`).
        :returns: the request's :class:`~precache.agent.slots.Ticket`, or
            ``_IN_PROGRESS`` or ``_BUSY``.
        """
        with self._inflight_lock:
            if image_id in self._inflight:
                return _IN_PROGRESS
            ticket = self.slots.admit(origin, bounded)
            if ticket is None:
                return _BUSY
            self._inflight.add(image_id)
            return ticket

    def _run(self, image, meta, report_existing, ticket):
        try:
            self._cache(image, meta, report_existing, ticket=ticket)
        finally:
            self._release(image.id, ticket)

    def _release(self, image_id, ticket):
        self.slots.release(ticket)
        with self._inflight_lock:
            self._inflight.discard(image_id)
            self._inflight_lock.notify_all()

    def _cache(self, image, meta, report_existing=True, busy=False,
               ticket=None):
        started = time.monotonic()
        result = {}
        try:
            if self.store.exists(image):
                self.store.touch(image)
                if not report_existing:
                    return states.EXISTING
                status = states.EXISTING
            elif busy:
                raise exception.AgentBusy(image_id=image.id,
                                          requests=len(self.slots))
            else:
                self._start_delay(image)
                self._acquire(image, ticket)
                self._report(image.id, states.DOWNLOADING,
                             generation=meta['generation'])
                if self.indexer is not None:
                    self.indexer.follow(meta_mod.delta_average(
                        meta['sources']))
                status = self._land(image, meta, result, ticket)
                if status == states.CACHED and self.indexer is not None:
                    self.indexer.landed(self.store.path(image))
        except exception.PrecacheException as exc:
            (LOG.warning if isinstance(exc, exception.AgentBusy) else
             LOG.error)('Caching image %s failed: %s', image.id, exc)
            self._report(image.id, states.FAILED, code=exc.code,
                         reason=str(exc), seconds=time.monotonic() - started,
                         generation=meta['generation'])
            return states.FAILED
        except Exception as exc:
            LOG.exception('Caching image %s failed unexpectedly', image.id)
            self._report(image.id, states.FAILED, code='unexpected',
                         reason='%s: %s' % (type(exc).__name__, exc),
                         seconds=time.monotonic() - started,
                         generation=meta['generation'])
            return states.FAILED
        seconds = time.monotonic() - started
        LOG.info('Image %s %s in %.1fs', image.id, status, seconds)
        self._report(image.id, status, seconds=seconds,
                     generation=meta['generation'],
                     bytes=result.get('bytes_received', 0),
                     source=result.get('method'),
                     delta_base=_delta_base(meta, result))
        return status

    def _acquire(self, image, ticket):
        """Wait for a download slot.

        :raises AgentBusy: a request of another origin took the place.
        :raises Interrupted: the agent is stopping.
        """
        try:
            self.slots.acquire(ticket, self.stopping)
        except slots_mod.Evicted:
            raise exception.AgentBusy(image_id=image.id,
                                      requests=len(self.slots)) from None
        self._check_stopping(image)

    def _land(self, image, meta, result, ticket):
        self.store.check_space(image)

        def write(fileobj):
            result.update(self.downloader.download(
                image, meta['sources'], fileobj, cancel=self.stopping,
                ticket=ticket))

        return self.store.land(image, write)

    def _start_delay(self, image):
        window = self.conf.agent.start_delay_window
        if window > 0:
            delay = random.uniform(0, window)
            LOG.debug('Image %s: waiting %.1fs before downloading',
                      image.id, delay)
            self.stopping.wait(delay)
        self._check_stopping(image)

    def _check_stopping(self, image):
        if self.stopping.is_set():
            raise exception.Interrupted(image_id=image.id,
                                        reason='the agent is stopping')

    def _report(self, image_id, status, **detail):
        try:
            self.service_api.report(rpc.get_context(), self.host,
                                    image_id, status, detail)
        except Exception:
            LOG.exception('Could not report image %s %s to the service',
                          image_id, status)

    # Periodic tasks -------------------------------------------------------

    def keep_alive(self):
        """Touch the images still wanted; let a store expire the others.

        The desired set is asked for first, so images the service still
        wants stay wanted (and any that went missing come back).
        """
        try:
            self.sync_desired()
        except exception.RPCVersionPinned as exc:
            LOG.debug('Not refreshing the desired images: %s', exc)
        except Exception as exc:
            LOG.warning('Could not refresh the desired images from the '
                        'service: %s', exc)
        images = self.wanted.current()
        for image in images:
            if self.store.exists(image):
                self.store.touch(image)
        expire = getattr(self.store, 'expire', None)
        if expire is not None:
            expire([image.id for image in images])
        if self.indexer is not None:
            self.indexer.rescan()
        LOG.debug('Keep-alive: touched %d wanted image(s)', len(images))

    def heartbeat(self):
        """Send this host's inventory and disk figures to the service."""
        status = {'version': version.version_string(),
                  'labels': list(self.conf.agent.labels),
                  'disk': self.store.disk_usage(),
                  'inventory': self.store.inventory()}
        try:
            self.service_api.heartbeat(rpc.get_context(), self.host, status)
        except Exception:
            LOG.exception('Could not send a heartbeat to the service')


def _delta_base(meta, result):
    """The base id of the ``delta`` source the image came from, or None."""
    if result.get('method') != 'delta':
        return None
    for source in meta['sources']:
        if source.get('method') == 'delta':
            return source['base']['id']
    return None
