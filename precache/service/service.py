"""precache-service as an oslo.service Service."""

from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_service import service

from precache.agent import rpcapi as agent_rpcapi
from precache import rpc
from precache.service import manager
from precache.service import pipeline

LOG = logging.getLogger(__name__)


class PrecacheService(service.Service):
    """Runs the pipeline periodically and listens to the agents.

    Plugins are loaded when the object is created, so a missing or broken
    plugin stops the process before it daemonises.
    """

    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        rpc.init(conf)
        self.pipeline = pipeline.Pipeline(conf, agent_rpcapi.AgentAPI(conf))
        self.manager = manager.ServiceManager(conf)
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
        LOG.info('precache-service started on %s, every %ds',
                 self.conf.host, self.conf.service.interval)

    def _run_pipeline(self):
        try:
            self.pipeline.run(rpc.get_context())
        except Exception:
            LOG.exception('Pipeline run failed; retrying next interval')
        # Read each time: [service] interval is mutable (SIGHUP).
        return self.conf.service.interval

    def stop(self, graceful=False):
        LOG.info('precache-service stopping')
        self.pipeline.cancel()
        if self.rpcserver is not None:
            self.rpcserver.stop()
            self.rpcserver.wait()
        super().stop(graceful=graceful)
        self.pipeline.stop()
        rpc.cleanup()
