"""Client side of the service's RPC API (used by agents and the CLI)."""

import oslo_messaging as messaging

from precache.common import rpc


class ServiceAPI(object):
    """Calls sent to precache-service.

    API version history:

    * 1.0 - Initial version: ``report`` and ``heartbeat`` casts.
    * 1.1 - ``desired`` (agents at start-up) and the operator calls of the
      ``precache`` CLI: ``get_status``, ``list_hosts``, ``list_images``,
      ``show_image``, ``request_cache`` and ``release``.
    * 1.2 - ``serve_request``: a fanout cast from the instance that took
      an on-demand request to every instance; the leader serves it.

    A method newer than 1.0 checks the version cap first and raises
    :class:`~precache.common.exception.RPCVersionPinned` when
    ``[upgrade_levels] service`` is below its version.

    Timestamps in results are ISO 8601 strings in UTC (or None).

    :param version_cap: the highest version sent; by default
        ``[upgrade_levels] service``, else :attr:`RPC_API_VERSION`.
    :param timeout: seconds a call waits for the service's answer; by
        default oslo.messaging's ``rpc_response_timeout``.
    """

    RPC_API_VERSION = '1.2'

    def __init__(self, conf, version_cap=None, timeout=None):
        target = messaging.Target(topic=conf.rpc.service_topic, version='1.0')
        self.timeout = timeout
        self.client = rpc.get_client(
            target, version_cap=(version_cap or conf.upgrade_levels.service or
                                 self.RPC_API_VERSION))

    def _call(self, context, method, version, **kwargs):
        rpc.check_version(self.client, version, method, 'service')
        cctxt = self.client.prepare(version=version, timeout=self.timeout)
        return cctxt.call(context, method, **kwargs)

    # Agents -------------------------------------------------------------

    def report(self, context, host, image_id, status, detail):
        """Report the progress or outcome of one cache request.

        :param host: the reporting agent's host name.
        :param image_id: the image concerned.
        :param status: ``downloading``, ``cached``, ``existing`` or
            ``failed``.
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

    def desired(self, context, host, labels):
        """Return the meta of every image ``host`` should have (1.1).

        :returns: a list of meta dicts (see :mod:`precache.objects.meta`).
        :raises RPCVersionPinned: ``[upgrade_levels] service`` is 1.0.
        """
        return self._call(context, 'desired', '1.1', host=host,
                          labels=labels)

    # Operators (the precache CLI) ----------------------------------------

    def get_status(self, context):
        """Return ``{'hosts': {'total', 'up', 'down'}, 'images': [...]}``.

        Each image is an image summary (see :meth:`list_images`) plus
        ``counts``: ``{status: number of live target hosts}`` and
        ``live_targets``.
        """
        return self._call(context, 'get_status', '1.1')

    def list_hosts(self, context):
        """Return one dict per known host.

        Keys: ``name``, ``up``, ``labels``, ``agent_version``,
        ``last_heartbeat``, ``disk_total``, ``disk_free``, ``cache_bytes``,
        ``images_cached``, ``images_failed``.
        """
        return self._call(context, 'list_hosts', '1.1')

    def list_images(self, context):
        """Return one image summary per known image.

        Keys: ``image_id``, ``name``, ``disk_format``, ``size``,
        ``listed_by``, ``listed``, ``requested``, ``pinned_until``,
        ``targets``, ``generation``, ``desired``, ``first_seen``,
        ``last_seen``, ``error``.
        """
        return self._call(context, 'list_images', '1.1')

    def show_image(self, context, image_id):
        """Return ``{'image': summary, 'hosts': [...], 'summary': {...}}``.

        ``hosts`` has one dict per known host: ``host``, ``up``,
        ``targeted``, ``status`` (None when never asked), ``reason``,
        ``code``, ``attempts``, ``bytes``, ``seconds``, ``updated_at``,
        ``next_attempt_at``. ``summary`` counts the live target hosts:
        ``live_targets``, ``done`` (cached or existing), ``failed``,
        ``missing``, ``in_progress`` (pending or downloading), ``waiting``
        (never asked yet) and ``bytes`` (received so far).

        :raises ImageNotFound: the service does not know the image.
        """
        return self._call(context, 'show_image', '1.1', image_id=image_id)

    def request_cache(self, context, image_id, hosts=None, labels=None,
                      pin_until=None):
        """Ask for ``image_id`` now, outside the periodic listing.

        The service records the request and answers at once; it then
        fetches, serves and distributes the image in the background.

        :param hosts: host names or globs; with ``labels``, the targets
            (every host when both are empty).
        :param pin_until: UNIX time until which hosts keep the image;
            the request lapses then.
        :returns: the image summary.
        """
        return self._call(context, 'request_cache', '1.1', image_id=image_id,
                          hosts=hosts or [], labels=labels or [],
                          pin_until=pin_until)

    def serve_request(self, context, image_id):
        """Tell every instance that ``image_id`` was requested (1.2).

        Sent by a follower that recorded an on-demand request: the
        leading instance serves it at once instead of at its next run;
        the others ignore it. A fanout cast: nothing waits for it, and
        one lost is made good by the leader's next run, which serves
        every recorded request.

        :raises RPCVersionPinned: ``[upgrade_levels] service`` is below
            1.2.
        """
        rpc.check_version(self.client, '1.2', 'serve_request', 'service')
        self.client.prepare(version='1.2', fanout=True).cast(
            context, 'serve_request', image_id=image_id)

    def release(self, context, image_id):
        """Withdraw an on-demand request; returns the image summary.

        Nothing is deleted on the hosts: they stop keeping the image
        alive, and Nova's own cache manager ages it out once unused.
        """
        return self._call(context, 'release', '1.1', image_id=image_id)
