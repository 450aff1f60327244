"""Where the ``http`` server's artifacts live and what describes them.

One image's compressed artifact in ``document_root``: its name (from the
image's hash and the compression), its hidden sidecar record (size and
sha256), which files of the image's directory belong to the served
version, and the fields of a source dict that describe an artifact's bytes.
"""

import json
import os
import urllib.parse

from oslo_log import log as logging

from precache.common import compression
from precache.common import exception
from precache.common import fileutils
from precache.service.servers import httpd

LOG = logging.getLogger(__name__)

#: The hash of the artifact's bytes put in the source dict.
HASH_ALGO = 'sha256'
ARTIFACT_EXTENSION = '.img'


class Artifact(object):
    """Where one image's compressed artifact and its record live.

    :raises ServeFailed: the image has no hash to name the artifact by, or
        an id that cannot be a directory name.
    """

    def __init__(self, root, image, algorithm):
        _algo, value = image.verification
        if not value:
            raise exception.ServeFailed(
                image_id=image.id,
                reason='it has neither os_hash_value nor checksum to name '
                       'its artifact by')
        if httpd.is_hidden(image.id) or '/' in image.id:
            raise exception.ServeFailed(
                image_id=image.id, reason='its id is not a valid file name')
        self.image_id = image.id
        self.compression = algorithm
        self.directory = os.path.join(root, image.id)
        self.name = '%s%s%s' % (value[:16].lower(), ARTIFACT_EXTENSION,
                                compression.SUFFIXES[algorithm])
        self.path = os.path.join(self.directory, self.name)
        #: Every artifact of this version starts with it (the extra
        #: ones too, see :meth:`.HTTPServer.extra_artifact_path`).
        self.version_prefix = value[:16].lower()
        self.record_name = '%s%s.json' % (httpd.HIDDEN_PREFIX, self.name)
        self.record_path = os.path.join(self.directory, self.record_name)
        self.url_path = '%s/%s' % (urllib.parse.quote(image.id, safe=''),
                                   self.name)

    def load(self):
        """Return the record of the artifact when it is in place, or None."""
        try:
            with open(self.record_path) as f:
                record = json.load(f)
            size = os.stat(self.path).st_size
        except (OSError, ValueError):
            return None
        if (not isinstance(record, dict) or record.get('size') != size or
                record.get('hash_algo') != HASH_ALGO):
            return None
        LOG.debug('Artifact %s of image %s is in place', self.name,
                  self.image_id)
        return record

    def save(self, size, digest):
        """Write the record of a freshly written artifact."""
        record = {'size': size, 'hash_algo': HASH_ALGO, 'hash_value': digest,
                  'compression': self.compression}
        with fileutils.atomic_write(self.record_path) as out:
            out.write(json.dumps(record).encode())
        return record

    def keeps(self, name):
        """Whether the file ``name`` belongs to this version (or a write).

        This artifact and its record, the extra artifacts of the same
        version and their records, and temporary files.
        """
        if name in (self.name, self.record_name) or name.startswith(
                fileutils.TEMP_PREFIX):
            return True
        if name.startswith(httpd.HIDDEN_PREFIX):
            name = name[len(httpd.HIDDEN_PREFIX):]
        return (name.startswith(self.version_prefix) and
                not name.startswith(self.version_prefix +
                                    ARTIFACT_EXTENSION))

    def remove_others(self):
        """Remove the artifacts and records of the image's older versions.

        The extra artifacts of this version (a delta) are kept.

        Temporary files are left alone: they may belong to a write in
        progress; :meth:`.HTTPServer.start` removes those a crash left.
        """
        for name in os.listdir(self.directory):
            if not self.keeps(name):
                LOG.info('Removing %s, left from an older version of '
                         'image %s', name, self.image_id)
                fileutils.remove_quietly(os.path.join(self.directory, name))


def artifact_source(artifact, record):
    """The fields of a source dict that describe an artifact's bytes.

    :param artifact: an :class:`Artifact`.
    :param record: its record, as :meth:`.HTTPServer.publish` returns it.
    """
    return {'compression': artifact.compression,
            'size': record['size'],
            'hash_algo': HASH_ALGO,
            'hash_value': record['hash_value']}


def extra_fields(artifact):
    """The fields of a source dict that describe an extra artifact's bytes.

    :param artifact: a :data:`~precache.service.servers.base.ExtraArtifact`.
    """
    return {'compression': artifact.compression, 'size': artifact.size,
            'hash_algo': artifact.hash_algo,
            'hash_value': artifact.hash_value}
