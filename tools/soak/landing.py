"""What an agent's ``_base`` holds, against what it should hold.

Nova boots whatever sits at ``_base/<sha1 of the image id>``, so a round
has converged on a host only when every desired image is there with the
expected bytes (sha512 of the raw image), no withdrawn image came back,
and no temporary or partial file is left anywhere under the host's
directory.
"""

import os

from precache.common import fileutils
from precache.common import verify
from precache.objects import image as image_mod

#: File names that mark an unfinished write.
PARTIAL_SUFFIXES = ('.part',)


def is_partial(name):
    """Whether ``name`` is a temporary or partial file of a writer."""
    return (name.startswith(fileutils.TEMP_PREFIX) or
            name.endswith(PARTIAL_SUFFIXES))


def partial_files(top):
    """Paths of the temporary/partial files under ``top``, sorted."""
    found = []
    for directory, _dirs, names in os.walk(top):
        found.extend(os.path.join(directory, n) for n in names
                     if is_partial(n))
    return sorted(found)


class DigestCache(object):
    """sha512 of files, once per file version (inode, size, mtime)."""

    def __init__(self):
        self._digests = {}

    def sha512(self, path):
        stat = os.stat(path)
        key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = verify.file_digest(path, 'sha512')
        return self._digests[key]


def inspect(host_dir, base_path, desired, withdrawn, digests):
    """Compare one host's store with what it should hold.

    :param host_dir: the host's directory (searched for partial files).
    :param base_path: its ``_base`` directory.
    :param desired: ``{image id: sha512 of the raw image}``.
    :param withdrawn: ids of images taken out of the listing whose base
        files were aged out: they must not come back.
    :param digests: a :class:`DigestCache`.
    :returns: ``{'missing', 'wrong', 'returned', 'partial'}``, lists of
        image ids (paths for ``partial``); all empty once converged.
    """
    problems = {'missing': [], 'wrong': [], 'returned': [], 'partial': []}
    for image_id, sha512 in sorted(desired.items()):
        path = os.path.join(base_path, image_mod.nova_cache_name(image_id))
        try:
            if digests.sha512(path) != sha512:
                problems['wrong'].append(image_id)
        except FileNotFoundError:
            problems['missing'].append(image_id)
    problems['returned'] = sorted(
        image_id for image_id in withdrawn if os.path.exists(
            os.path.join(base_path, image_mod.nova_cache_name(image_id))))
    problems['partial'] = partial_files(host_dir)
    return problems


def converged(problems):
    """Whether an :func:`inspect` result shows nothing wrong."""
    return not any(problems.values())


def age_out(base_path, image_id):
    """Remove an image's base file as Nova's image cache manager would."""
    try:
        os.unlink(os.path.join(base_path,
                               image_mod.nova_cache_name(image_id)))
    except FileNotFoundError:
        pass
