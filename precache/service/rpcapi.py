"""Client side of the service's RPC API (used by agents)."""

import oslo_messaging as messaging

from precache import rpc


class ServiceAPI(object):
    """Calls sent by agents to precache-service.

    API version history:

    * 1.0 - Initial version: ``report`` and ``heartbeat`` casts.
    """

    RPC_API_VERSION = '1.0'

    def __init__(self, conf, version_cap=None):
        target = messaging.Target(topic=conf.rpc.service_topic, version='1.0')
        self.client = rpc.get_client(target,
                                     version_cap=version_cap or
                                     self.RPC_API_VERSION)

    def report(self, context, host, image_id, status, detail):
        """Report the outcome of one cache request.

        :param host: the reporting agent's host name.
        :param image_id: the image concerned.
        :param status: ``cached``, ``existing`` or ``failed``.
        :param detail: dict with ``reason`` (failures), ``code``,
            ``bytes``, ``seconds``, ``source`` and ``generation``.
        """
        self.client.prepare().cast(context, 'report', host=host,
                                   image_id=image_id, status=status,
                                   detail=detail)

    def heartbeat(self, context, host, status):
        """Send the agent's periodic status.

        :param status: dict with ``version``, ``labels``, ``disk``
            (total/free/cache_bytes) and ``inventory`` (list of cached
            image files).
        """
        self.client.prepare().cast(context, 'heartbeat', host=host,
                                   status=status)
