"""precache-agent as an oslo.service Service."""

import threading

from oslo_log import log as logging
import oslo_messaging as messaging
from oslo_service import service

from precache.agent import manager
from precache.agent import metrics
from precache.common import amqp_reconnect
from precache.common import rpc
from precache.service import rpcapi as service_rpcapi

LOG = logging.getLogger(__name__)

#: Seconds a stop waits for the requests in progress to end (they are
#: cancelled first: this is the time to remove a temporary file and send a
#: report).
IDLE_TIMEOUT = 3
#: Seconds a stop waits for a step that closes connections to the broker.
#: oslo.messaging's listener only notices a stop between two polls of the
#: broker (up to several seconds apart); the process exits right after,
#: which closes the connections anyway.
BROKER_TIMEOUT = 1
#: Seconds between a reconnection to the broker and the request for the
#: desired set: the driver declares the queues again meanwhile.
RESYNC_DELAY = 2


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
        service_api = service_rpcapi.ServiceAPI(
            conf, timeout=conf.agent.desired_timeout)
        self.metrics = (metrics.AgentMetrics() if conf.metrics.textfile
                        else None)
        if self.metrics is not None:
            service_api = metrics.ReportingServiceAPI(service_api,
                                                      self.metrics)
        self.manager = manager.AgentManager(conf, service_api)
        if self.metrics is not None:
            self.metrics.watch_disk(self.manager.store)
        self.rpcserver = None
        self._stopped = threading.Event()
        self._reconnected = threading.Event()

    def start(self):
        super().start()
        self.manager.store.recover()
        if self.manager.indexer is not None:
            self.manager.indexer.start()
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
        if self.metrics is not None:
            self.tg.add_timer_args(self.conf.metrics.textfile_interval,
                                   self._write_metrics, initial_delay=0,
                                   stop_on_exception=False)
        # Casts sent while this agent was down are lost: ask for the
        # desired set (in the background: the service may be down too).
        threading.Thread(target=self.manager.sync_desired_until_done,
                         args=(self._stopped,
                               self.conf.agent.desired_timeout),
                         name='desired-sync', daemon=True).start()
        amqp_reconnect.add_reconnect_listener(self._reconnected.set)
        threading.Thread(target=self._resync_after_reconnections,
                         name='desired-resync', daemon=True).start()
        LOG.info('precache-agent started on %s (store %s)',
                 self.conf.host, self.conf.agent.store)

    def stop(self, graceful=False):
        LOG.info('precache-agent stopping')
        self._stopped.set()
        amqp_reconnect.remove_reconnect_listener(self._reconnected.set)
        self._reconnected.set()
        # Downloads end first, so that the RPC server's wait below (for
        # the calls in progress) is short.
        self.manager.cancel()
        if self.rpcserver is not None:
            _bounded(self._stop_rpc_server, BROKER_TIMEOUT,
                     'stopping the RPC server')
        if not self.manager.wait_idle(IDLE_TIMEOUT):
            LOG.warning('A request was still in progress %d s after the '
                        'stop', IDLE_TIMEOUT)
        self.manager.downloader.close()
        if self.manager.indexer is not None:
            self.manager.indexer.stop()
        if self.metrics is not None:
            self._write_metrics()
        super().stop(graceful=graceful)
        _bounded(rpc.cleanup, BROKER_TIMEOUT,
                 'closing the connections to the broker')
        LOG.info('precache-agent stopped')

    def _resync_after_reconnections(self):
        """Ask for the desired set again after each broker reconnection.

        The broker drops the casts sent while this agent's queues did not
        exist (a broker restart): without this the service would cast
        them again only after ``[service] report_timeout``.
        """
        while True:
            self._reconnected.wait()
            if self._stopped.wait(RESYNC_DELAY):
                return
            self._reconnected.clear()
            LOG.info('Reconnected to the broker: asking the service for '
                     'the desired images again')
            self.manager.sync_desired_until_done(
                self._stopped, self.conf.agent.desired_timeout)

    def _write_metrics(self):
        self.metrics.write(self.conf.metrics.textfile)

    def _stop_rpc_server(self):
        self.rpcserver.stop()
        self.rpcserver.wait()


def _bounded(step, timeout, what):
    """Run ``step`` in a thread; give up waiting for it after ``timeout``.

    The daemon's stop must not wait for the broker: the process ends just
    after, and its connections with it.
    """
    thread = threading.Thread(target=step, name=what, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        LOG.info('Still %s after %s s: going on without waiting', what,
                 timeout)
