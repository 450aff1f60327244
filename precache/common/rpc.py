"""The control plane: one place owning the oslo.messaging transport, RPC
clients and servers, and the notifier.

Servers are created without ``executor=``: oslo.messaging then dispatches
to a pool of native threads, so endpoints must be thread-safe.

Exceptions of :data:`ALLOWED_EXMODS` raised by an endpoint are raised again
as their own class by the caller (oslo.messaging rebuilds them, with their
``kwargs``); any other comes back as ``oslo_messaging.RemoteError``.
"""

from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_log import log as logging
import oslo_messaging as messaging

from precache.common import amqp_reconnect
from precache.common import exception

LOG = logging.getLogger(__name__)

#: Modules whose exceptions callers get back as the real class.
ALLOWED_EXMODS = [exception.__name__]

TRANSPORT = None
NOTIFICATION_TRANSPORT = None
NOTIFIER = None


class RequestContextSerializer(messaging.Serializer):
    """Carries an :class:`oslo_context.context.RequestContext` over RPC."""

    def serialize_entity(self, context, entity):
        return entity

    def deserialize_entity(self, context, entity):
        return entity

    def serialize_context(self, context):
        return context.to_dict()

    def deserialize_context(self, context):
        return oslo_context.RequestContext.from_dict(context)


def init(conf, url=None):
    """Create the transports and the notifier.

    :param conf: the ConfigOpts (``transport_url`` and driver options).
    :param url: a transport URL overriding ``transport_url``, e.g.
        ``fake:/`` for an all-in-one process.
    """
    global TRANSPORT, NOTIFICATION_TRANSPORT, NOTIFIER
    _name_stable_queues(conf)
    amqp_reconnect.install()
    if TRANSPORT is None:
        TRANSPORT = messaging.get_rpc_transport(
            conf, url=url, allowed_remote_exmods=ALLOWED_EXMODS)
    if NOTIFICATION_TRANSPORT is None:
        NOTIFICATION_TRANSPORT = messaging.get_notification_transport(
            conf, url=url)
    if NOTIFIER is None:
        NOTIFIER = messaging.Notifier(
            NOTIFICATION_TRANSPORT, publisher_id='precache.%s' % conf.host,
            serializer=RequestContextSerializer())


def _name_stable_queues(conf):
    """Name the stable queues after ``[DEFAULT] host``.

    With ``[oslo_messaging_rabbit] use_queue_manager`` the fanout and reply
    queues are named ``<hostname>:<processname>:<n>`` and outlive a
    restart. oslo.messaging's ``hostname`` defaults to the machine's name;
    precache uses its own host name unless ``hostname`` is set, so that
    each agent keeps its queue however hosts are named.
    """
    location = conf.get_location('hostname', 'oslo_messaging_rabbit')
    if location is None or location.location in (
            cfg.Locations.opt_default, cfg.Locations.set_default):
        conf.set_override('hostname', conf.host,
                          group='oslo_messaging_rabbit')


def cleanup():
    """Close the transports (at process exit and between tests)."""
    global TRANSPORT, NOTIFICATION_TRANSPORT, NOTIFIER
    for transport in (TRANSPORT, NOTIFICATION_TRANSPORT):
        if transport is not None:
            transport.cleanup()
    TRANSPORT = NOTIFICATION_TRANSPORT = NOTIFIER = None


def get_client(target, version_cap=None):
    """Return an RPC client for ``target``; :func:`init` must have run."""
    assert TRANSPORT is not None, 'precache.common.rpc.init() was not called'
    return messaging.get_rpc_client(
        TRANSPORT, target, version_cap=version_cap,
        serializer=RequestContextSerializer())


def check_version(client, version, method, peer):
    """Raise unless ``client``'s version cap lets it send ``version``.

    Call it before using a method newer than the API's first version.

    :param client: the RPC client (or a prepared call context).
    :param method: the method's name, for the message.
    :param peer: ``service`` or ``agent``: the receiving daemon and the
        ``[upgrade_levels]`` option that caps the version.
    :raises RPCVersionPinned: the version is above the cap.
    """
    if not client.can_send_version(version):
        raise exception.RPCVersionPinned(method=method, peer=peer,
                                         version=version,
                                         cap=client.version_cap)


def get_server(target, endpoints):
    """Return an RPC server dispatching ``target`` to ``endpoints``."""
    assert TRANSPORT is not None, 'precache.common.rpc.init() was not called'
    return messaging.get_rpc_server(
        TRANSPORT, target, endpoints,
        serializer=RequestContextSerializer())


def get_notifier(publisher_id=None):
    """Return the notifier, optionally for another publisher id."""
    assert NOTIFIER is not None, 'precache.common.rpc.init() was not called'
    if publisher_id:
        return NOTIFIER.prepare(publisher_id=publisher_id)
    return NOTIFIER


def get_context():
    """Return the request context precache's own casts are sent with."""
    return oslo_context.RequestContext(
        user_id='precache', project_id=None, overwrite=False)
