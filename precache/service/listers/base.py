"""The ImageLister plugin interface (namespace ``precache.listers``)."""

import abc

from oslo_config import cfg
from oslo_log import log as logging

from precache.common import exception
from precache.common import glance
from precache.common import plugin
from precache.objects import image as image_mod

LOG = logging.getLogger(__name__)

TARGET_OPTS = [
    cfg.ListOpt('target_hosts',
                default=[], mutable=True,
                help='Hosts (names or shell-style globs such as cmp-az1*) '
                     'that get the images of this lister. With '
                     'target_labels empty too, every host gets them.'),
    cfg.ListOpt('target_labels',
                default=[], mutable=True,
                help='Host labels ([agent] labels of the agents, e.g. '
                     'aggregate or availability zone names) whose hosts get '
                     'the images of this lister.'),
]


class ImageLister(plugin.Plugin, metaclass=abc.ABCMeta):
    """Says which images must be pre-cached.

    Several listers may be enabled at once; the service merges their
    results by image id.

    Every lister has the options ``target_hosts`` and ``target_labels``
    in its group: the hosts that get its images (every host by default).

    :param conf: the process's ConfigOpts.
    """

    @classmethod
    def get_interface_opts(cls):
        return TARGET_OPTS

    def targets(self):
        """Return this lister's targets; None means every host."""
        hosts = list(self.options.target_hosts)
        labels = list(self.options.target_labels)
        if not hosts and not labels:
            return None
        return {'hosts': hosts, 'labels': labels}

    def get(self, image_id):
        """Return the record of one image, listed or not.

        Used for on-demand requests (``precache cache IMAGE``), which may
        name an image this lister does not list. The default looks the
        image up in :meth:`list`; listers backed by an image service
        override it to ask for the image directly.

        :returns: an :class:`~precache.objects.image.ImageRecord`, or None when
            this lister does not know the image.
        """
        for record in self.list():
            if record.id == image_id:
                return record
        return None

    @abc.abstractmethod
    def list(self):
        """Return the images to pre-cache now.

        :returns: an iterable of :class:`precache.objects.image.ImageRecord`,
            each
            with at least ``id``, ``disk_format``, ``size`` and a hash
            (``os_hash_algo``/``os_hash_value`` or ``checksum``). Only
            images that are ``active`` should be returned.
        :raises PrecacheException: the listing as a whole failed (e.g. the
            image service is unreachable); the service logs it and keeps
            the results of the other listers.
        """


class GlanceBackedLister(glance.ClientMixin, ImageLister):
    """A lister whose images are Glance's: :meth:`get` asks Glance.

    ``self.glance`` is a glanceclient v2 client built from ``[glance]``
    (see :class:`precache.common.glance.ClientMixin`).
    """

    def get(self, image_id):
        """Return the record of an active image, or None.

        None when Glance has no active image by that id (logged with the
        reason).
        """
        try:
            img = glance.get_image(self.glance, image_id)
        except (exception.ImageNotFound, exception.ImageNotActive) as exc:
            LOG.warning('Image %s cannot be pre-cached: %s', image_id, exc)
            return None
        return image_mod.ImageRecord.from_glance(img, lister=self.name)
