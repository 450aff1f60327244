"""AMQP reconnections: close what they replace, tell who must resync.

Why this module exists: oslo.messaging's RabbitMQ driver (18.x) reconnects
from its heartbeat thread by calling kombu's public
``Connection.ensure_connection()`` on a connection whose socket the broker
reset. kombu (5.x) then opens a new py-amqp connection and drops the old
one without closing it: py-amqp marks a reset transport as not connected
but keeps its socket open, and the old connection and its channels refer
to one another, so the socket is closed only when Python's cyclic garbage
collector happens to run a full collection, which a long-running daemon
may not do for hours. Each broker restart thus left one or two sockets
(in no ``/proc/net`` table) and their buffers behind in every precache
process. kombu's own retry path (``Connection.ensure``) does close the old
connection first (``collect()``); :func:`install` makes
``ensure_connection`` do the same.

A message sent while a consumer's queue did not exist (after a broker
restart, before the consumer declared its queue again) is dropped by the
broker: an agent that reconnects may have missed casts.
:func:`add_reconnect_listener` lets it ask for the desired set again at
once instead of waiting for the service's ``[service] report_timeout``.
"""

import threading

import kombu
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_LOCK = threading.Lock()
_LISTENERS = []
_installed = False
#: Set on a kombu connection once it has been connected.
_CONNECTED_ONCE = '_precache_connected_once'


def install():
    """Patch kombu's ``Connection`` once per process (idempotent)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        ensure_connection = kombu.Connection.ensure_connection
        connection_factory = kombu.Connection._connection_factory

        def _ensure_connection(self, *args, **kwargs):
            if self._connection is not None and not self.connected:
                # What kombu.Connection.ensure() does before reconnecting.
                LOG.debug('Closing the broken connection to %s before '
                          'reconnecting', self.as_uri())
                self.collect()
            return ensure_connection(self, *args, **kwargs)

        def _connection_factory(self):
            connection = connection_factory(self)
            if getattr(self, _CONNECTED_ONCE, False):
                _notify()
            setattr(self, _CONNECTED_ONCE, True)
            return connection

        kombu.Connection.ensure_connection = _ensure_connection
        kombu.Connection._connection_factory = _connection_factory
        _installed = True


def add_reconnect_listener(callback):
    """Call ``callback()`` after each reconnection to the broker.

    It runs in the thread that reconnected, with the driver's connection
    lock held: it must return at once (set an event, say).
    """
    with _LOCK:
        _LISTENERS.append(callback)


def remove_reconnect_listener(callback):
    with _LOCK:
        if callback in _LISTENERS:
            _LISTENERS.remove(callback)


def _notify():
    with _LOCK:
        listeners = list(_LISTENERS)
    for callback in listeners:
        try:
            callback()
        except Exception:
            LOG.exception('A reconnection listener failed')
