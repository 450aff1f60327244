"""Client side of the agents' RPC API (used by the service and the CLI)."""

import oslo_messaging as messaging

from precache.common import rpc


class AgentAPI(object):
    """Calls sent to precache-agents.

    API version history:

    * 1.0 - Initial version: ``cache(image_id, meta)`` as a fanout to every
      agent or a cast to one host.

    A method added later must call :func:`precache.common.rpc.check_version`
    (peer ``agent``) before sending, so that a service pinned by
    ``[upgrade_levels] agent`` to older agents' version refuses it.

    :param version_cap: the highest version sent; by default
        ``[upgrade_levels] agent``, else :attr:`RPC_API_VERSION`.
    """

    RPC_API_VERSION = '1.0'

    def __init__(self, conf, version_cap=None):
        target = messaging.Target(topic=conf.rpc.agent_topic, version='1.0')
        self.client = rpc.get_client(
            target, version_cap=(version_cap or conf.upgrade_levels.agent or
                                 self.RPC_API_VERSION))

    def cache(self, context, image_id, meta, host=None):
        """Ask agents to cache an image.

        :param image_id: the image's id (also in ``meta``).
        :param meta: a dict built by :func:`precache.objects.meta.build`.
        :param host: cast to this host only; by default fan out to every
            agent (at most once: an agent that is down misses it).
        """
        if host:
            cctxt = self.client.prepare(server=host)
        else:
            cctxt = self.client.prepare(fanout=True)
        cctxt.cast(context, 'cache', image_id=image_id, meta=meta)
