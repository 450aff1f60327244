"""The ``static`` lister: image ids named in the configuration."""

from oslo_config import cfg
from oslo_log import log as logging

from precache.common import exception
from precache.common import glance
from precache.objects import image as image_mod
from precache.service.listers import base

LOG = logging.getLogger(__name__)


class StaticLister(base.GlanceBackedLister):
    """Lists the images whose ids are in ``[static_lister] image_ids``.

    Each image is looked up in Glance, so its record carries the size and
    hashes its bytes are verified against. An id Glance does not know, or
    whose image is not active, is logged and skipped; the others are
    still listed.

    :param conf: the process's ConfigOpts; Glance is reached with the
        ``[glance]`` options.
    :param client: a glanceclient v2 client to use instead of one built
        from ``[glance]``.
    """

    @classmethod
    def get_config_group(cls):
        return 'static_lister'

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.ListOpt('image_ids',
                        default=[], mutable=True,
                        help='Ids of the Glance images to pre-cache, e.g. '
                             'those of the golden images. An id that Glance '
                             'does not know, or whose image is not active, '
                             'is skipped with a warning naming it.'),
        ]

    def list(self):
        """Return an ImageRecord per known, active configured image.

        :raises FetchFailed: Glance could not be asked (unreachable,
            credentials refused); the listing as a whole failed.
        """
        image_ids = list(dict.fromkeys(self.options.image_ids))
        records = []
        for image_id in image_ids:
            try:
                img = glance.get_image(self.glance, image_id)
            except (exception.ImageNotFound,
                    exception.ImageNotActive) as exc:
                LOG.warning('Skipping image %(id)s of [static_lister] '
                            'image_ids: %(reason)s',
                            {'id': image_id, 'reason': exc})
                continue
            records.append(image_mod.ImageRecord.from_glance(
                img, lister='static'))
        LOG.debug('The static lister found %(found)d of %(wanted)d '
                  'image(s)', {'found': len(records),
                               'wanted': len(image_ids)})
        return records
