"""precache-service as an oslo.service Service."""

import threading

from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_service import service

from precache.agent import rpcapi as agent_rpcapi
from precache.common import rpc
from precache.db import api as db_api
from precache.service import convergence
from precache.service import manager
from precache.service import notifications
from precache.service import pipeline
from precache.service import state

LOG = logging.getLogger(__name__)

#: Seconds a stop waits for the image being processed to end.
STOP_TIMEOUT = 30


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
        self.db = db_api.StateDB.from_conf(conf)
        if conf.service.auto_db_sync:
            self.db.sync()
        else:
            self.db.check_schema()
        agent_api = agent_rpcapi.AgentAPI(conf)
        self.reconciler = convergence.Reconciler(
            conf, self.db, agent_api,
            notifications.RoundNotifier(conf.host))
        self.state = state.StateKeeper(conf, self.db, self.reconciler,
                                       self.reconciler.notifier,
                                       on_request=self._on_request)
        self.pipeline = pipeline.Pipeline(conf, agent_api, state=self.state)
        self.manager = manager.ServiceManager(conf, self.state)
        self.rpcserver = None

    def start(self):
        super().start()
        self.pipeline.start()
        target = messaging.Target(topic=self.conf.rpc.service_topic,
                                  server=self.conf.host)
        self.rpcserver = rpc.get_server(target, [self.manager])
        self.rpcserver.start()
        self.tg.add_dynamic_timer_args(self._run_pipeline, initial_delay=0,
                                       stop_on_exception=False)
        self.tg.add_dynamic_timer_args(
            self._reconcile,
            initial_delay=self.conf.service.reconcile_interval,
            stop_on_exception=False)
        LOG.info('precache-service started on %s, every %ds',
                 self.conf.host, self.conf.service.interval)

    def _run_pipeline(self):
        try:
            self.pipeline.run(rpc.get_context())
        except Exception:
            LOG.exception('Pipeline run failed; retrying next interval')
        # Read each time: [service] interval is mutable (SIGHUP).
        return self.conf.service.interval

    def _reconcile(self):
        try:
            self.reconciler.reconcile(rpc.get_context())
        except Exception:
            LOG.exception('Convergence pass failed; retrying next interval')
        return self.conf.service.reconcile_interval

    def _on_request(self, image_id):
        """Serve an on-demand request without waiting for the next run."""
        threading.Thread(
            target=self._process_request, args=(image_id,),
            name='request-%s' % image_id, daemon=True).start()

    def _process_request(self, image_id):
        try:
            self.pipeline.process_request(rpc.get_context(), image_id)
        except Exception:
            LOG.exception('On-demand request of image %s failed', image_id)

    def stop(self, graceful=False):
        LOG.info('precache-service stopping')
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
        rpc.cleanup()
