"""precache-service as an oslo.service Service."""

import queue

from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_service import service

from precache.common import rpc
from precache.service import coordination
from precache.service import factory
from precache.service import metrics
from precache.service import rpcapi

LOG = logging.getLogger(__name__)

#: Seconds a stop waits for the image being processed to end.
STOP_TIMEOUT = 30

#: Seconds between two checks of the stop flag by the request drainer.
_REQUEST_POLL = 0.5


class PrecacheService(service.Service):
    """Runs the pipeline and convergence; answers agents and operators.

    Plugins are loaded and the database is opened (and, with
    ``[service] auto_db_sync``, upgraded) when the object is created, so a
    missing plugin or an unreachable database stops the process before it
    daemonises.
    """

    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        rpc.init(conf)
        self.leadership = coordination.Leadership(conf, conf.host)
        self.parts = factory.build(conf, factory.open_database(conf),
                                   leadership=self.leadership,
                                   metrics=conf.metrics.enabled)
        self.metrics_endpoint = metrics.endpoint_from_conf(
            conf, self.parts.state)
        self.pipeline = self.parts.pipeline
        self.reconciler = self.parts.reconciler
        self.rpcserver = None
        self.service_api = rpcapi.ServiceAPI(conf)
        self._stopping = False

    def start(self):
        super().start()
        self.pipeline.start()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.start()
        target = messaging.Target(topic=self.conf.rpc.service_topic,
                                  server=self.conf.host)
        self.rpcserver = rpc.get_server(target, [self.parts.manager])
        self.rpcserver.start()
        self.tg.add_thread(self._drain_requests)
        if self.leadership.enabled:
            self.leadership.renew()
            self.tg.add_dynamic_timer_args(
                self.leadership.renew,
                initial_delay=self.leadership.renew_seconds,
                stop_on_exception=False)
        self.tg.add_dynamic_timer_args(self._run_pipeline, initial_delay=0,
                                       stop_on_exception=False)
        self.tg.add_dynamic_timer_args(
            self._reconcile,
            initial_delay=self.conf.service.reconcile_interval,
            stop_on_exception=False)
        LOG.info('precache-service started on %s, every %ds',
                 self.conf.host, self.conf.service.interval)

    def _run_pipeline(self):
        if not self.leadership.is_leader():
            # A follower looks again soon: it runs as soon as it leads.
            return self.leadership.renew_seconds
        try:
            self.pipeline.run(rpc.get_context())
        except Exception:
            LOG.exception('Pipeline run failed; retrying next interval')
        # Read each time: [service] interval is mutable (SIGHUP).
        return self.conf.service.interval

    def _reconcile(self):
        if not self.leadership.is_leader():
            return self.leadership.renew_seconds
        try:
            self.reconciler.reconcile(rpc.get_context())
        except Exception:
            LOG.exception('Convergence pass failed; retrying next interval')
        return self.conf.service.reconcile_interval

    def _drain_requests(self):
        """Serve on-demand requests without waiting for the next run.

        Runs in the service's thread group until the service stops.
        """
        while not self._stopping:
            try:
                image_id = self.parts.requests.get(timeout=_REQUEST_POLL)
            except queue.Empty:
                continue
            if not self.leadership.is_leader():
                self._wake_the_leader(image_id)
                continue
            try:
                self.pipeline.process_request(rpc.get_context(), image_id)
            except Exception:
                LOG.exception('On-demand request of image %s failed',
                              image_id)

    def _wake_the_leader(self, image_id):
        """Have the leading instance serve a request this one recorded.

        The request is in the database: should the cast be lost or
        refused (``[upgrade_levels] service`` below 1.2 while instances
        are upgraded), the leader's next run serves it.
        """
        try:
            self.service_api.serve_request(rpc.get_context(), image_id)
        except Exception as exc:
            LOG.warning('Image %s requested: the leading instance will '
                        'serve it in its next run (it could not be told '
                        'now: %s)', image_id, exc)
            return
        LOG.info('Image %s requested: the leading instance was told to '
                 'serve it', image_id)

    def stop(self, graceful=False):
        LOG.info('precache-service stopping')
        self._stopping = True
        self.pipeline.cancel()
        if self.rpcserver is not None:
            self.rpcserver.stop()
            self.rpcserver.wait()
        super().stop(graceful=graceful)
        # The process must not exit while a cancelled fetch removes its
        # temporary file.
        if not self.pipeline.wait_idle(STOP_TIMEOUT):
            LOG.warning('An image was still being processed %d s after '
                        'the stop', STOP_TIMEOUT)
        self.pipeline.stop()
        self.leadership.stop()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()
        rpc.cleanup()
