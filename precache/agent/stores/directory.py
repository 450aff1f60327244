"""The ``directory`` store: images kept in a plain directory.

Images are stored as ``<path>/<image_id>``, in their Glance format unless
``convert_to_raw`` is set. This is the only store that ever deletes:
:meth:`DirectoryStore.expire` removes images that are no longer wanted once
they are older than ``ttl``.
"""

import os
import re
import time

from oslo_config import cfg
from oslo_log import log as logging

from precache.agent.stores import base
from precache.common import exception

LOG = logging.getLogger(__name__)

#: Prefix of this store's lock files, in ``<path>/.locks``.
LOCK_PREFIX = 'precache-image-'
#: What an image id must look like to become a file name.
IMAGE_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')


class DirectoryStore(base.ImageStore):
    """Keeps images in a directory, one file per image id."""

    @classmethod
    def get_config_group(cls):
        return 'directory_store'

    @classmethod
    def get_config_opts(cls):
        return super().get_config_opts() + [
            cfg.StrOpt('path', default='/var/lib/precache/images',
                       help='Directory the images are stored in, as '
                            '<path>/<image id>. Its parent must exist.'),
            cfg.IntOpt('ttl', default=0, min=0, mutable=True,
                       help='Seconds after its last touch when an image the '
                            'service no longer wants is deleted; 0 keeps '
                            'images forever.'),
            cfg.BoolOpt('convert_to_raw', default=False,
                        help='Convert images that are not raw to raw with '
                             'qemu-img (sparse); by default images are kept '
                             'in their Glance disk_format.'),
        ]

    @property
    def cache_dir(self):
        return self.options.path

    def path(self, image):
        return os.path.join(self.cache_dir, _checked_id(image.id))

    def lock(self, image):
        return self._lock_id(_checked_id(image.id))

    def wants_raw(self, image):
        return self.options.convert_to_raw

    def is_cache_file(self, name):
        return bool(IMAGE_ID_RE.match(name))

    def image_id_for(self, name):
        return name

    def expire(self, wanted_ids):
        """Delete the images not in ``wanted_ids`` older than ``ttl``.

        Each image is re-checked under its lock, so an image landed or
        touched meanwhile stays.

        :param wanted_ids: ids of the images the service still wants.
        :returns: the ids of the deleted images.
        """
        ttl = self.options.ttl
        if not ttl:
            return []
        wanted = set(wanted_ids)
        cutoff = time.time() - ttl
        removed = []
        for entry in self.inventory():
            image_id = entry['image_id']
            if image_id not in wanted and entry['mtime'] < cutoff:
                if self._remove_if_older(image_id, cutoff):
                    removed.append(image_id)
        return removed

    def _remove_if_older(self, image_id, cutoff):
        path = os.path.join(self.cache_dir, image_id)
        with self._lock_id(image_id):
            try:
                if os.stat(path).st_mtime >= cutoff:
                    return False
                os.unlink(path)
            except FileNotFoundError:
                return False
        LOG.info('Expired image %(image)s from %(dir)s',
                 {'image': image_id, 'dir': self.cache_dir})
        return True

    def _lock_id(self, image_id):
        with self._store_errors(None, self.cache_dir):
            self.ensure_directory(self.cache_dir)
        return self.external_lock(image_id, LOCK_PREFIX,
                                  os.path.join(self.cache_dir, '.locks'))


def _checked_id(image_id):
    if not IMAGE_ID_RE.match(image_id or ''):
        raise exception.StoreFailed(
            image_id=image_id,
            reason='the image id is not usable as a file name')
    return image_id
