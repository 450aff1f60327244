"""The service's RPC endpoint: what agents tell the service."""

import threading
import time

from oslo_log import log as logging
import oslo_messaging as messaging

LOG = logging.getLogger(__name__)


class ServiceManager(object):
    """Receives agents' reports and heartbeats.

    Endpoint methods are called from oslo.messaging's thread pool, so all
    state is guarded by a lock. This keeps the latest report per host and
    image and the latest heartbeat per host in memory.
    """

    target = messaging.Target(version='1.0')

    def __init__(self, conf):
        self.conf = conf
        self._lock = threading.Lock()
        self.reports = {}
        self.heartbeats = {}
        self._listeners = []

    def add_listener(self, callback):
        """Call ``callback(kind, host, payload)`` for every message."""
        self._listeners.append(callback)

    def report(self, context, host, image_id, status, detail):
        LOG.info('Host %s: image %s %s %s', host, image_id, status,
                 detail.get('reason') or '')
        payload = dict(detail, image_id=image_id, status=status,
                       received_at=time.time())
        with self._lock:
            self.reports[(host, image_id)] = payload
        self._notify('report', host, payload)

    def heartbeat(self, context, host, status):
        LOG.debug('Heartbeat from %s: %d cached image file(s)', host,
                  len(status.get('inventory') or ()))
        payload = dict(status, received_at=time.time())
        with self._lock:
            self.heartbeats[host] = payload
        self._notify('heartbeat', host, payload)

    def _notify(self, kind, host, payload):
        for callback in self._listeners:
            try:
                callback(kind, host, payload)
            except Exception:
                LOG.exception('Listener %s failed', callback)
