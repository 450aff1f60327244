"""The landing transaction's file plumbing, mixed into ImageStore.

:class:`LandingMixin` holds what :meth:`ImageStore.land
<precache.agent.stores.base.ImageStore.land>` does on disk: temporary
files beside the final one (held against another process's recovery),
filling them with the writeback started early, giving the result its owner,
group and mode, fsyncing and renaming it into place, and turning an
``OSError`` into a precache exception. It relies on the attributes that
:class:`~precache.agent.stores.base.ImageStore` sets up (``_held``,
``_held_lock``, ``_owner``, ``file_mode``) and on its hooks.
"""

import contextlib
import errno
import os
import tempfile

from precache.agent.stores import images
from precache.agent.stores import owner
from precache.agent.stores import writeback
from precache.common import exception
from precache.common import fileutils

_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class LandingMixin(object):
    """Temporary files, filling, finalizing and error mapping for a store."""

    def ensure_directory(self, directory):
        """Create ``directory`` if missing, owned like its parent."""
        if os.path.isdir(directory):
            return
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            return
        fileutils.chown_like(directory, os.path.dirname(directory))

    def new_temp_file(self, final, stage):
        """Create an empty temporary file for ``final`` and return its path.

        It lives in the directory of ``final`` and is named
        ``<TEMP_PREFIX>XXXXXXXX.<name>.<stage>``: :meth:`recover` removes it
        after a crash, and it never looks like a name Nova's image cache
        manager acts on (``<sha1>`` or ``<sha1>_<suffix>``). This process
        holds its writer's lock (:func:`precache.common.fileutils.hold`)
        until :meth:`discard_temp_file`, so no other process's
        :meth:`recover` removes it while it is written.
        """
        fd, tmp_path = tempfile.mkstemp(
            prefix=fileutils.TEMP_PREFIX,
            suffix='.%s.%s' % (os.path.basename(final), stage),
            dir=os.path.dirname(final))
        try:
            fileutils.hold(fd)
        except BaseException:
            os.close(fd)
            fileutils.remove_quietly(tmp_path)
            raise
        with self._held_lock:
            self._held[tmp_path] = fd
        return tmp_path

    def discard_temp_file(self, tmp_path):
        """Remove a :meth:`new_temp_file` if still there; drop its lock."""
        if os.path.lexists(tmp_path):
            fileutils.remove_quietly(tmp_path)
        with self._held_lock:
            fd = self._held.pop(tmp_path, None)
        if fd is not None:
            os.close(fd)

    # Internals.

    def _install(self, image, final, write):
        directory = os.path.dirname(final)
        with self._store_errors(image, directory):
            self.ensure_directory(directory)
            tmp_path = self.new_temp_file(final, 'part')
        ready = None
        try:
            self._receive(image, tmp_path, write)
            with self._store_errors(image, tmp_path):
                ready = self.prepare(image, tmp_path)
            with self._store_errors(image, final):
                self._finalize(ready, directory)
                os.rename(ready, final)
            fileutils.fsync_dir_quietly(directory)
        finally:
            for path in (tmp_path, ready):
                if path:
                    self.discard_temp_file(path)

    def _receive(self, image, tmp_path, write):
        """Let ``write`` fill ``tmp_path``, then make the bytes durable.

        The writeback to disk starts while ``write`` runs (see
        :mod:`precache.agent.stores.writeback`), so the fsync at the end
        has little left to write.
        """
        with self._store_errors(image, tmp_path):
            raw = open(tmp_path, 'wb')
            try:
                fileobj = writeback.WritebackFile(raw)
            except BaseException:
                raw.close()
                raise
        done = False
        try:
            try:
                write(fileobj)
            except OSError as exc:
                if exc.errno in _NO_SPACE_ERRNOS:
                    raise self._os_error(image, tmp_path, exc) from exc
                raise
            with self._store_errors(image, tmp_path):
                fileutils.extend_to_position(fileobj)
                fileobj.flush()
                os.fsync(fileobj.fileno())
                fileobj.close()
            done = True
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    fileobj.close()

    def _finalize(self, path, directory):
        """Give ``path`` its owner, group and mode and fsync it."""
        uid, gid = self._owner or self.default_owner(directory)
        fd = os.open(path, os.O_RDONLY)
        try:
            if (uid, gid) != owner.UNCHANGED:
                try:
                    os.fchown(fd, uid, gid)
                except PermissionError as exc:
                    raise PermissionError(
                        exc.errno, 'cannot give it uid %d, gid %d: the agent '
                        'must run as root or as that user (see [%s] '
                        'file_owner)' % (uid, gid, self.get_config_group()),
                        path) from exc
            os.fchmod(fd, self.file_mode)
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _store_errors(self, image, path):
        """Turn an OSError into a precache exception naming ``path``."""
        try:
            yield
        except OSError as exc:
            raise self._os_error(image, path, exc) from exc

    def _os_error(self, image, path, exc):
        image_id = image.id if image else '-'
        if exc.errno in _NO_SPACE_ERRNOS:
            return images.out_of_space(image_id, path, exc.strerror)
        return exception.StoreFailed(
            image_id=image_id,
            reason='%s failed on %s: %s' % (
                type(exc).__name__, exc.filename or path, exc.strerror or exc))
