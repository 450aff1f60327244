"""The service's RPC endpoint: agents' reports, heartbeats and ``desired``
calls, and the ``precache`` CLI's calls."""

import time

from oslo_log import log as logging
import oslo_messaging as messaging

from precache.common import exception
from precache.objects import image as image_mod
from precache.service import rpcapi

LOG = logging.getLogger(__name__)


class ServiceManager(object):
    """Receives what agents and operators send to precache-service.

    Endpoint methods are called from oslo.messaging's thread pool. The work
    is the :class:`~precache.service.state.StateKeeper`'s; without one
    (tools and tests that only watch agents) reports and heartbeats only
    reach the listeners and the other calls are refused.

    :param conf: the service's ConfigOpts.
    :param state: the StateKeeper, or None.
    """

    target = messaging.Target(version=rpcapi.ServiceAPI.RPC_API_VERSION)

    def __init__(self, conf, state=None):
        self.conf = conf
        self.state = state
        self._listeners = []

    def add_listener(self, callback):
        """Call ``callback(kind, host, payload)`` on reports, heartbeats."""
        self._listeners.append(callback)

    def _notify(self, kind, host, payload):
        for callback in self._listeners:
            try:
                callback(kind, host, payload)
            except Exception:
                LOG.exception('Listener %s failed', callback)

    def _state(self):
        if self.state is None:
            raise exception.PrecacheException(
                'this endpoint keeps no state')
        return self.state

    # Agents (1.0) ---------------------------------------------------------

    def report(self, context, host, image_id, status, detail):
        LOG.info('Host %s: image %s %s %s', image_mod.quote_id(host),
                 image_mod.quote_id(image_id), status,
                 detail.get('reason') or '')
        if self.state is not None:
            try:
                self.state.report(context, host, image_id, status, detail)
            except Exception:
                LOG.exception('Could not store the report of host %s on '
                              'image %s', image_mod.quote_id(host),
                              image_mod.quote_id(image_id))
        self._notify('report', host, dict(detail, image_id=image_id,
                                          status=status,
                                          received_at=time.time()))

    def heartbeat(self, context, host, status):
        LOG.debug('Heartbeat from %s: %d cached image file(s)', host,
                  len(status.get('inventory') or ()))
        if self.state is not None:
            try:
                self.state.heartbeat(context, host, status)
            except Exception:
                LOG.exception('Could not store the heartbeat of host %s',
                              host)
        self._notify('heartbeat', host, dict(status,
                                             received_at=time.time()))

    # Agents (1.1) ---------------------------------------------------------

    def desired(self, context, host, labels):
        if self.state is None:
            return []  # an endpoint without state wants nothing
        return self.state.desired(context, host, labels)

    # Operators (1.1) ------------------------------------------------------

    def get_status(self, context):
        return self._state().get_status(context)

    def list_hosts(self, context):
        return self._state().list_hosts(context)

    def list_images(self, context):
        return self._state().list_images(context)

    @messaging.expected_exceptions(exception.ImageNotFound)
    def show_image(self, context, image_id):
        return self._state().show_image(context, image_id)

    def request_cache(self, context, image_id, hosts, labels, pin_until):
        return self._state().request_cache(context, image_id, hosts, labels,
                                           pin_until)

    @messaging.expected_exceptions(exception.ImageNotFound)
    def release(self, context, image_id):
        return self._state().release(context, image_id)

    # Instances (1.2) ------------------------------------------------------

    def serve_request(self, context, image_id):
        if self.state is not None:
            self.state.serve_request(context, image_id)
