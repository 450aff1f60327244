"""The service's staging directory of fetched, verified images.

Layout: ``<staging_dir>/<image_id>`` holds the image's bytes and
``<staging_dir>/<image_id>.json`` the record they were verified against.
An image whose record still has the same hash and size is current and is
not fetched again; a changed image is.
"""

import contextlib
import json
import os

from precache.common import fileutils
from precache.common import verify


class StagingArea(object):
    """Verified image files kept by the service between runs."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        fileutils.remove_leftovers(directory)

    def path(self, image):
        """Return where ``image``'s bytes are kept."""
        return os.path.join(self.directory, image.id)

    def _record_path(self, image):
        return self.path(image) + '.json'

    def is_current(self, image):
        """Tell whether the staged bytes are those of ``image`` as listed."""
        try:
            with open(self._record_path(image)) as f:
                staged = json.load(f)
        except (OSError, ValueError):
            return False
        return (staged.get('version_key') == image.version_key and
                os.path.exists(self.path(image)))

    @contextlib.contextmanager
    def writer(self, image):
        """Yield a file object for ``image``'s bytes, verified on close.

        Everything written is hashed; when the block ends the bytes must
        match the image's multihash (or checksum) and size, otherwise
        :class:`~precache.common.exception.HashMismatch` or
        :class:`~precache.common.exception.SizeMismatch` is raised and nothing
            is
        kept.
        """
        verifier = verify.Verifier(image)
        fileutils.remove_quietly(self._record_path(image))
        with fileutils.atomic_write(self.path(image)) as out:
            yield _VerifyingFile(out, verifier)
            verifier.check()
        with fileutils.atomic_write(self._record_path(image)) as out:
            out.write(json.dumps({'version_key': image.version_key,
                                  'image': image.to_dict()}).encode())


class _VerifyingFile(object):
    """Writes through to a file while feeding a :class:`Verifier`."""

    def __init__(self, fileobj, verifier):
        self._fileobj = fileobj
        self._verifier = verifier

    def write(self, data):
        self._verifier.update(data)
        return self._fileobj.write(data)
