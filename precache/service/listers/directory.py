"""A lister of the image files found in a local directory.

For clouds (or trials) without Glance: every regular file in
``[directory_lister] path`` whose name is a valid image id is an image.
Its disk format is detected with oslo.utils' format inspector and its
sha512 is computed once per file version (size and mtime), so unchanged
files are not re-hashed every run.
"""

import os
import threading

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from precache.common import verify
from precache.objects import image as image_mod
from precache.service.listers import base

LOG = logging.getLogger(__name__)

# Formats the inspector reports for what Glance would call a raw image.
_RAW_LIKE = ('raw', 'gpt', 'mbr')


class DirectoryLister(base.ImageLister):
    """Lists the image files of a directory; the file name is the id."""

    def __init__(self, conf):
        super().__init__(conf)
        self._lock = threading.Lock()
        self._known = {}

    @classmethod
    def get_config_group(cls):
        return 'directory_lister'

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.StrOpt('path',
                       help='Directory whose files are the images to '
                            'pre-cache; a file\'s name is its image id. '
                            'Pair it with the file fetcher pointing at the '
                            'same directory.'),
        ]

    def list(self):
        directory = self.options.path
        if not directory:
            LOG.warning('[directory_lister] path is not set: no image '
                        'listed')
            return []
        records = []
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.startswith('.') or not os.path.isfile(path):
                continue
            records.append(self._record(name, path))
        return records

    def _record(self, image_id, path):
        stat = os.stat(path)
        version = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._known.get(image_id)
            if known and known[0] == version:
                return known[1]
        disk_format, virtual_size = inspect(path)
        record = image_mod.ImageRecord(
            id=image_id, name=image_id, size=stat.st_size,
            disk_format=disk_format, virtual_size=virtual_size,
            container_format='bare',
            os_hash_algo='sha512',
            os_hash_value=verify.file_digest(path, 'sha512'),
            listed_by=[self.name or 'directory'])
        with self._lock:
            self._known[image_id] = (version, record)
        return record


def inspect(path):
    """Return the Glance disk_format and virtual size of an image file.

    The format is ``raw`` when the inspector is unsure.
    """
    inspector = format_inspector.detect_file_format(path)
    if inspector is None:
        return 'raw', os.path.getsize(path)
    name = inspector.NAME
    return ('raw' if name in _RAW_LIKE else name), inspector.virtual_size
