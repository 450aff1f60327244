"""The ImageLister plugin interface (namespace ``precache.listers``)."""

import abc

from precache import plugin


class ImageLister(plugin.Plugin, metaclass=abc.ABCMeta):
    """Says which images must be pre-cached.

    Several listers may be enabled at once; the service merges their
    results by image id.

    :param conf: the process's ConfigOpts.
    """

    @abc.abstractmethod
    def list(self):
        """Return the images to pre-cache now.

        :returns: an iterable of :class:`precache.image.ImageRecord`, each
            with at least ``id``, ``disk_format``, ``size`` and a hash
            (``os_hash_algo``/``os_hash_value`` or ``checksum``). Only
            images that are ``active`` should be returned.
        :raises PrecacheException: the listing as a whole failed (e.g. the
            image service is unreachable); the service logs it and keeps
            the results of the other listers.
        """
