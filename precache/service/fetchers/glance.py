"""The ``glance`` fetcher: stream each image from Glance's API."""

from precache.common import glance
from precache.service.fetchers import base


class GlanceFetcher(glance.ClientMixin, base.ImageFetcher):
    """Downloads images from Glance, as Nova itself would.

    Glance is reached with the ``[glance]`` options and read
    ``[glance] download_chunk_size`` bytes at a time; the base class
    verifies the bytes against the image's ``os_hash_value``.

    :param conf: the process's ConfigOpts.
    :param client: a glanceclient v2 client to use instead of one built
        from ``[glance]``.
    """

    def iter_chunks(self, image):
        """Yield the image's bytes from Glance.

        :raises ImageNotFound: Glance has no such image, or no data for it.
        :raises FetchFailed: the download failed; the reason says why.
        """
        return glance.iter_image_data(
            self.glance, image, self.conf.glance.download_chunk_size)
