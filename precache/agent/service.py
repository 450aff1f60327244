"""precache-agent as an oslo.service Service."""

import threading

from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_service import service

from precache.agent import manager
from precache.common import rpc
from precache.service import rpcapi as service_rpcapi

LOG = logging.getLogger(__name__)


class AgentService(service.Service):
    """Listens for cache requests and runs the agent's periodic tasks.

    The agent listens on ``Target(topic=[rpc] agent_topic,
    server=[DEFAULT] host)``: it receives the service's fanouts and the
    casts addressed to this host alone.
    """

    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        rpc.init(conf)
        self.manager = manager.AgentManager(
            conf, service_rpcapi.ServiceAPI(
                conf, timeout=conf.agent.desired_timeout))
        self.rpcserver = None
        self._stopped = threading.Event()

    def start(self):
        super().start()
        self.manager.store.recover()
        target = messaging.Target(topic=self.conf.rpc.agent_topic,
                                  server=self.conf.host)
        self.rpcserver = rpc.get_server(target, [self.manager])
        self.rpcserver.start()
        self.tg.add_timer_args(self.conf.agent.heartbeat_interval,
                               self.manager.heartbeat, initial_delay=0,
                               stop_on_exception=False)
        keepalive = self.conf.agent.keepalive_interval
        self.tg.add_timer_args(keepalive, self.manager.keep_alive,
                               initial_delay=keepalive,
                               stop_on_exception=False)
        # Casts sent while this agent was down are lost: ask for the
        # desired set (in the background: the service may be down too).
        threading.Thread(target=self.manager.sync_desired_until_done,
                         args=(self._stopped,
                               self.conf.agent.desired_timeout),
                         name='desired-sync', daemon=True).start()
        LOG.info('precache-agent started on %s (store %s)',
                 self.conf.host, self.conf.agent.store)

    def stop(self, graceful=False):
        LOG.info('precache-agent stopping')
        self._stopped.set()
        if self.rpcserver is not None:
            self.rpcserver.stop()
            self.rpcserver.wait()
        self.manager.downloader.close()
        super().stop(graceful=graceful)
        rpc.cleanup()
