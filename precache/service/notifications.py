"""Versioned notifications of distribution rounds.

Every round of an image (a fanout, or a batch of targeted casts) emits:

* ``precache.cache.start`` when its casts are sent;
* ``precache.cache.progress`` once per host that answers, with ``index``
  and ``total``, ``host``, ``images_cached`` and ``images_failed`` (the
  shape of Nova's ``aggregate.cache_images.progress``); since 1.1 also
  how the image came: ``source`` (the data plane, ``delta`` for an image
  assembled from a base the host held), ``delta_base`` (that base's id,
  else null) and ``bytes`` (what travelled);
* ``precache.cache.end`` when every host answered, or when the round timed
  out (``unanswered`` names the silent hosts).

Payloads are versioned the way Nova's are: ``precache_object.name``,
``precache_object.namespace``, ``precache_object.version`` and the fields
under ``precache_object.data``. A consumer checks the major version; minor
versions only add fields.

They are sent through oslo.messaging's Notifier: set
``[oslo_messaging_notifications] driver = messagingv2`` to publish them
(the default driver sends nothing).
"""

from oslo_log import log as logging

from precache.common import rpc
from precache.service import views

LOG = logging.getLogger(__name__)

START = 'precache.cache.start'
PROGRESS = 'precache.cache.progress'
END = 'precache.cache.end'

PAYLOAD_VERSIONS = {
    START: ('CacheStartPayload', '1.0'),
    PROGRESS: ('CacheProgressPayload', '1.1'),
    END: ('CacheEndPayload', '1.0'),
}


def _versioned(event_type, data):
    name, version = PAYLOAD_VERSIONS[event_type]
    return {'precache_object.name': name,
            'precache_object.namespace': 'precache',
            'precache_object.version': version,
            'precache_object.data': data}


class RoundNotifier(object):
    """Emits the notifications of distribution rounds.

    :param host: the service's host name (in the publisher id).
    """

    def __init__(self, host):
        self.publisher_id = 'precache-service.%s' % host

    def _emit(self, context, event_type, data):
        try:
            rpc.get_notifier(self.publisher_id).info(
                context, event_type, _versioned(event_type, data))
        except Exception:
            LOG.exception('Could not send notification %s', event_type)

    def start(self, context, round_id, image_id, generation, kind, hosts):
        """A round opened: its casts to ``hosts`` (names) were sent."""
        self._emit(context, START, {
            'round_id': round_id, 'image_id': image_id,
            'generation': generation, 'kind': kind, 'total': len(hosts),
            'hosts': sorted(hosts)})

    def progress(self, context, answer, host, image_id, status, reason,
                 detail=None):
        """``host`` answered: ``answer`` is the round's row dict.

        ``detail`` is the agent's report (``source``, ``bytes``,
        ``delta_base``).
        """
        cached = status != 'failed'
        detail = detail or {}
        self._emit(context, PROGRESS, {
            'round_id': answer['id'], 'image_id': image_id,
            'index': answer['index'], 'total': answer['total'],
            'host': host, 'status': status,
            'images_cached': [image_id] if cached else [],
            'images_failed': [] if cached else [image_id],
            'reason': reason,
            'source': detail.get('source'),
            'delta_base': detail.get('delta_base'),
            'bytes': detail.get('bytes')})

    def end(self, context, round_row, unanswered=()):
        """A round ended: every host answered, or it timed out."""
        self._emit(context, END, {
            'round_id': round_row['id'],
            'image_id': round_row['image_id'],
            'generation': round_row['generation'],
            'kind': round_row['kind'],
            'total': round_row['total'],
            'answered': round_row['answered'],
            'cached': round_row['cached'],
            'failed': round_row['failed'],
            'unanswered': sorted(unanswered),
            'started_at': views.isotime(round_row['started_at']),
            'ended_at': views.isotime(round_row['ended_at'])})
