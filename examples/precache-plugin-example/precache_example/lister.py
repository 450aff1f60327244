"""The ``manifest`` lister: the images of a JSON manifest file."""

import json

from oslo_config import cfg
from precache.common import exception
from precache.objects import image as image_mod
from precache.service.listers import base


class ManifestLister(base.ImageLister):
    """Lists the images of ``[manifest_lister] path``.

    The manifest is a JSON list of image records (``id``, ``name``,
    ``disk_format``, ``size``, ``os_hash_algo``, ``os_hash_value``).
    """

    @classmethod
    def get_config_group(cls):
        return 'manifest_lister'

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.StrOpt('path', mutable=True,
                       help='JSON file listing the images to pre-cache.'),
        ]

    def list(self):
        try:
            with open(self.options.path) as f:
                entries = json.load(f)
        except (OSError, TypeError, ValueError) as exc:
            raise exception.ConfigurationError(
                reason='[manifest_lister] path %s cannot be read as a JSON '
                       'manifest: %s' % (self.options.path, exc)) from exc
        records = []
        for entry in entries:
            record = image_mod.ImageRecord.from_dict(entry)
            record.listed_by = [self.name]
            records.append(record)
        return records
