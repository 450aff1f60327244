"""The ImageFetcher plugin interface (namespace ``precache.fetchers``)."""

import abc
import threading

from oslo_log import log as logging

from precache.common import exception
from precache.common import plugin
from precache.service.fetchers import staging

LOG = logging.getLogger(__name__)


class ImageFetcher(plugin.Plugin, metaclass=abc.ABCMeta):
    """Brings an image's bytes to the service's staging directory.

    A fetcher implements :meth:`iter_chunks`; the base class skips images
    that are already staged and unchanged, writes to a temporary file,
    verifies the bytes against the image's ``os_hash_value`` (md5
    ``checksum`` only when there is no multihash) and size, and renames the
    file into place only when they match.

    :param conf: the process's ConfigOpts.
    """

    def __init__(self, conf):
        super().__init__(conf)
        self.staging = staging.StagingArea(conf.service.staging_dir)
        self._cancelled = threading.Event()

    def cancel(self):
        """Make fetches in progress fail at their next chunk.

        Called when the service stops; the partial file is removed.
        """
        self._cancelled.set()

    def fetch(self, image):
        """Return the local path of ``image``'s verified bytes.

        :param image: a :class:`precache.objects.image.ImageRecord` from a
            lister.
        :returns: path of a file holding exactly the image's bytes.
        :raises PrecacheException: a subclass saying why the image could
            not be fetched (e.g. ``ImageNotFound``, ``HashMismatch``,
            ``FetchFailed``); the service logs it and skips the image.
        """
        if self.staging.is_current(image):
            LOG.debug('Image %s is already staged and unchanged', image.id)
            return self.staging.path(image)
        LOG.info('Fetching image %s (%s bytes) with %s', image.id,
                 image.size, self.name)
        with self.staging.writer(image) as out:
            try:
                for chunk in self.iter_chunks(image):
                    if self._cancelled.is_set():
                        raise exception.FetchFailed(
                            image_id=image.id, reason='the service is '
                            'stopping; the partial download was removed')
                    out.write(chunk)
            except exception.PrecacheException:
                raise
            except Exception as exc:
                raise exception.FetchFailed(image_id=image.id,
                                            reason=exc) from exc
        return self.staging.path(image)

    @abc.abstractmethod
    def iter_chunks(self, image):
        """Yield the image's bytes, in order, as ``bytes`` chunks.

        Stream: never hold the whole image in memory. Verification is done
        by the caller; raise ``ImageNotFound`` when the image is gone and
        ``FetchFailed`` for other errors worth a clear message.

        :param image: a :class:`precache.objects.image.ImageRecord`.
        """
