"""File plumbing: writing files so that no reader ever sees a partial one.

Atomic writes, fsync helpers, the O_DIRECT probe, the removal of
precache's temporary leftovers and the ownership of files and lock files
created on behalf of another service.
"""

import contextlib
import errno
import fcntl
import mmap
import os
import tempfile

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Prefix of every temporary file precache creates; files starting with it
#: are precache's own leftovers and may be removed at start.
TEMP_PREFIX = '.precache-tmp-'


@contextlib.contextmanager
def atomic_write(path, mode=0o644):
    """Yield a binary file object whose content replaces ``path`` on success.

    The temporary file lives in the same directory (so the final rename is
    atomic) under a name starting with :data:`TEMP_PREFIX`. On success it
    is fsynced, given ``mode``, renamed over ``path`` and the directory is
    fsynced. On any exception it is removed and the exception propagates.
    """
    directory = os.path.dirname(path) or '.'
    fd, tmp_path = tempfile.mkstemp(
        prefix=TEMP_PREFIX, suffix='.' + os.path.basename(path),
        dir=directory)
    try:
        with os.fdopen(fd, 'wb') as fileobj:
            yield fileobj
            fileobj.flush()
            os.fsync(fileobj.fileno())
        os.chmod(tmp_path, mode)
        os.rename(tmp_path, path)
        fsync_dir(directory)
    except BaseException:
        remove_quietly(tmp_path)
        raise


def fsync_dir(directory):
    """fsync a directory so that a rename in it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir_quietly(directory):
    """fsync ``directory`` as :func:`fsync_dir`; log a failure, never raise.

    :param directory: the directory a file was renamed in.
    """
    try:
        fsync_dir(directory)
    except OSError as exc:
        LOG.warning('Could not fsync directory %(dir)s: %(error)s',
                    {'dir': directory, 'error': exc})


def extend_to_position(fileobj):
    """Extend the file to the position a final seek over zeros left.

    :param fileobj: a binary file object open for writing.
    """
    position = fileobj.tell()
    fileobj.flush()
    if position > os.fstat(fileobj.fileno()).st_size:
        fileobj.truncate(position)


def chown_like(target, reference):
    """Give ``target`` (a path or fd) the owner of ``reference`` (as root).

    Without root a file is created with the agent's own ids, which are the
    only ones it could give, so nothing is changed.

    :param target: the path or file descriptor to change.
    :param reference: the path whose owner and group ``target`` gets.
    """
    if os.geteuid() != 0:
        return
    ref = os.stat(reference)
    st = os.stat(target)
    if (st.st_uid, st.st_gid) != (ref.st_uid, ref.st_gid):
        os.chown(target, ref.st_uid, ref.st_gid)


def ensure_lock_file(path, reference):
    """Create the lock file ``path`` if missing, owned like ``reference``.

    An existing file is opened for appending, never truncated.

    :param path: the lock file.
    :param reference: the path (usually the lock directory) whose owner
        and group the lock file gets; see :func:`chown_like`.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        chown_like(fd, reference)
    finally:
        os.close(fd)


def sorted_listdir(directory):
    """Return the sorted names in ``directory``; none if it is missing."""
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def existing_ancestor(path):
    """Return the absolute ``path`` or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def supports_direct_io(directory):
    """Tell whether files in ``directory`` can be written with O_DIRECT.

    As Nova probes its instances path before ``qemu-img convert -t
    none``: a file system such as tmpfs refuses O_DIRECT (EINVAL) when the
    file is opened or written. The probe is a :data:`TEMP_PREFIX` file,
    removed before returning.
    """
    if not hasattr(os, 'O_DIRECT'):
        return False
    fd, path = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix='.directio',
                                dir=directory)
    os.close(fd)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        try:
            # An anonymous mapping is page-aligned, as O_DIRECT wants.
            with mmap.mmap(-1, mmap.PAGESIZE) as block:
                os.write(fd, block)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    finally:
        remove_quietly(path)
    return True


def _remove_unheld(path):
    """Remove ``path`` unless a live writer holds it; True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        # Not openable (a symlink, a FIFO...): not one of ours in use.
        remove_quietly(path)
        return True
    try:
        try:
            hold(fd)
        except BlockingIOError:
            LOG.info('Temporary file %s is held by a live process: left '
                     'to it', path)
            return False
        remove_quietly(path)
        return True
    finally:
        os.close(fd)


def remove_quietly(path):
    """Remove ``path`` if it exists; log other failures."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        LOG.warning('Could not remove %s: %s', path, exc)


def hold(fd):
    """Take the writer's lock of a temporary file, without waiting.

    A temporary file whose writer holds this lock (``flock``, released
    when the writer's process ends, however it ends) is never removed by
    :func:`remove_leftovers`.

    :raises BlockingIOError: another open file holds the lock.
    """
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def remove_leftovers(directory):
    """Remove precache's temporary files left in ``directory`` by a crash.

    Only files whose name starts with :data:`TEMP_PREFIX` are touched, and
    only those no live process holds (see :func:`hold`): the temporary
    file of a process still writing, e.g. a daemon's previous instance
    still stopping, is left to it.

    :returns: the list of removed paths.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if name.startswith(TEMP_PREFIX):
            path = os.path.join(directory, name)
            if _remove_unheld(path):
                removed.append(path)
    if removed:
        LOG.info('Removed %d leftover temporary file(s) in %s',
                 len(removed), directory)
    return removed
