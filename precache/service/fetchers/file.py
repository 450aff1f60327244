"""The ``file`` fetcher: images already on the service's file system."""

import os

from oslo_config import cfg

from precache.common import exception
from precache.service.fetchers import base


class FileFetcher(base.ImageFetcher):
    """Reads images from local files (e.g. an NFS export of Glance's store).

    An image's file is ``[file_fetcher] image_paths[<id>]`` if given, else
    ``<image_dir>/<id>`` (the layout of Glance's filesystem store). The
    bytes are verified like any fetcher's, so a stale or foreign file is
    refused.

    :param conf: the process's ConfigOpts.
    """

    @classmethod
    def get_config_group(cls):
        return 'file_fetcher'

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.StrOpt('image_dir',
                       help='Directory holding the images, each in a file '
                            'named by its image id, like Glance\'s '
                            'filesystem store (filesystem_store_datadir).'),
            cfg.DictOpt('image_paths',
                        default={}, mutable=True,
                        help='Files of individual images as image_id:path '
                             'pairs; an image listed here is read from its '
                             'path even when image_dir is set.'),
            cfg.IntOpt('chunk_size',
                       default=1024 * 1024, min=4096,
                       help='Bytes read from the file at a time.'),
        ]

    def image_path(self, image):
        """Return the path of ``image``'s file.

        :raises ImageNotFound: no path is configured for the image.
        """
        opts = self.options
        if image.id in opts.image_paths:
            return opts.image_paths[image.id]
        if not opts.image_dir:
            raise exception.ImageNotFound(
                image_id=image.id,
                reason='[file_fetcher] image_paths has no path for it and '
                       'image_dir is not set')
        # An id is a file name, never a path leading elsewhere.
        if os.path.basename(image.id) != image.id or image.id in ('.', '..'):
            raise exception.ImageNotFound(
                image_id=image.id,
                reason='the id cannot be a file name in [file_fetcher] '
                       'image_dir')
        return os.path.join(opts.image_dir, image.id)

    def iter_chunks(self, image):
        """Yield the bytes of the image's file.

        :raises ImageNotFound: the file does not exist.
        :raises FetchFailed: the file cannot be read.
        """
        path = self.image_path(image)
        try:
            f = open(path, 'rb')
        except FileNotFoundError:
            raise exception.ImageNotFound(image_id=image.id,
                                          reason='no file %s' % path)
        except OSError as exc:
            raise exception.FetchFailed(
                image_id=image.id, reason='cannot open %s: %s' % (path, exc))
        with f:
            yield from iter(lambda: f.read(self.options.chunk_size), b'')
