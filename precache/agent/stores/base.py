"""The ImageStore plugin interface (namespace ``precache.stores``).

An :class:`ImageStore` owns one directory on the compute host and lands
verified images in it so that no reader ever sees a partial or unsafe file:
the bytes go to a temporary file next to the final one, are inspected (and
converted to raw where the store wants raw), get their owner and mode, are
fsynced and renamed into place while the store's lock for the image is held.

This module is the SDK of store plugins: a store subclasses
:class:`ImageStore` (its docstring says what to implement) and is registered
as an entry point of ``precache.stores``. The landing transaction and the
space checks are here; the transaction's temporary files, finalizing and
error mapping in :mod:`precache.agent.stores.landing`, the image safety
checks and qemu-img in :mod:`precache.agent.stores.images`, the file
plumbing in :mod:`precache.common.fileutils`.
"""

import abc
import os
import stat
import threading

from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import units

from precache.agent.stores import images
from precache.agent.stores import landing
from precache.agent.stores import owner
from precache.common import exception
from precache.common import fileutils
from precache.common import plugin
from precache.objects import states

LOG = logging.getLogger(__name__)


class ImageStore(plugin.Plugin, landing.LandingMixin,
                 metaclass=abc.ABCMeta):
    """Where and how a verified image lands on a compute host.

    The agent manager calls :meth:`recover` once at start, then for each
    image :meth:`check_space` and :meth:`land`; it reports
    :meth:`inventory` and :meth:`disk_usage` in its heartbeats and keeps
    wanted images alive with :meth:`touch`.

    A store implements :attr:`cache_dir`, :meth:`path`, :meth:`lock` and
    :meth:`wants_raw`; the hooks :meth:`prepare`, :meth:`is_cache_file`,
    :meth:`image_id_for`, :meth:`counts_toward_cap`, :meth:`after_land` and
    :meth:`default_owner` have sensible defaults. Every method may be
    called from several threads at once.

    :param conf: the process's :class:`oslo_config.cfg.ConfigOpts`, with
        this store's options registered under :meth:`get_config_group`.
    :raises ConfigurationError: an option has a value the store cannot use.
    :raises ToolMissing: qemu-img, which inspects every image, is not
        installed.
    """

    #: What an unset ``file_owner`` means; stores may override it.
    OWNER_DEFAULT_HELP = 'Unset: the file keeps the user the agent runs as.'

    def __init__(self, conf):
        super().__init__(conf)
        images.require_qemu_img()
        #: Temporary file path -> the open file holding its writer's lock.
        self._held = {}
        self._held_lock = threading.Lock()
        self.file_mode = int(self.options.file_mode, 8)
        self._owner = owner.resolve(self.get_config_group(),
                                    self.options.file_owner,
                                    self.options.file_group)

    @classmethod
    def get_config_opts(cls):
        """Return the options every store has; extend in subclasses."""
        return [
            cfg.StrOpt('file_mode', default='0644', regex=r'^0?[0-7]{3}$',
                       help='Permission bits (octal) of a landed image.'),
            cfg.StrOpt('file_owner',
                       help='User (name or uid) owning a landed image. ' +
                            cls.OWNER_DEFAULT_HELP),
            cfg.StrOpt('file_group',
                       help='Group (name or gid) of a landed image. Unset: '
                            'the primary group of file_owner when that is '
                            'set, else as for file_owner.'),
            cfg.IntOpt('qemu_img_timeout', default=120, min=1,
                       help='Seconds qemu-img info may take to inspect a '
                            'downloaded image before the image is refused. '
                            'It also runs with Nova\'s resource limits (30 s '
                            'of CPU, 1 GiB of address space).'),
        ]

    # The parts a store implements.

    @property
    @abc.abstractmethod
    def cache_dir(self):
        """The directory images land in, listed by :meth:`inventory`."""

    @abc.abstractmethod
    def path(self, image):
        """Return the final path of ``image`` (whether it exists or not).

        :param image: a :class:`precache.objects.image.ImageRecord`.
        """

    @abc.abstractmethod
    def lock(self, image):
        """Return a context manager holding the store's lock for ``image``.

        :meth:`land` holds it while it checks for and writes the image, so
        it must exclude every other writer of :meth:`path` (other threads,
        other processes). :meth:`external_lock` builds such a lock.
        """

    @abc.abstractmethod
    def wants_raw(self, image):
        """Return True if an image that is not raw must be converted."""

    # Hooks with defaults.

    def prepare(self, image, tmp_path):
        """Inspect the downloaded file and return the file to install.

        The default refuses unsafe content (see :meth:`inspect`) and
        converts to raw when :meth:`wants_raw` says so. A second file must
        be made by :meth:`new_temp_file` beside ``tmp_path``; the hook
        removes it itself when it fails. The caller removes ``tmp_path``
        and the returned file on any later failure.

        :param image: the :class:`precache.objects.image.ImageRecord` being
            landed.
        :param tmp_path: the temporary file holding the verified bytes.
        :returns: the path of the file to rename to :meth:`path`.
        :raises UnsafeImage: the content must not be used.
        :raises ConversionFailed: the conversion to raw failed.
        """
        file_format = self.inspect(image, tmp_path)
        if file_format == 'raw' or not self.wants_raw(image):
            return tmp_path
        return self.convert_to_raw(image, tmp_path, file_format)

    def is_cache_file(self, name):
        """Return True if the file ``name`` in :attr:`cache_dir` is an image.

        The default takes every name not starting with a dot (temporary
        files and lock directories start with one).
        """
        return not name.startswith('.')

    def image_id_for(self, name):
        """Return the image id of the cache file ``name``, or None."""
        return None

    def counts_toward_cap(self, name):
        """Return True if the cache file ``name`` was landed by precache.

        Such files count toward ``[agent] cache_size_cap_mb``.
        """
        return True

    def after_land(self, image, result):
        """Called after :meth:`land` succeeded with ``result``."""

    def default_owner(self, directory):
        """Return ``(uid, gid)`` for a file when ``file_owner`` is unset.

        -1 leaves the id unchanged, which the default does.
        """
        return owner.UNCHANGED

    # The contract used by the agent manager.

    def recover(self):
        """Remove precache's temporary leftovers from :attr:`cache_dir`.

        Only names starting with :data:`precache.common.fileutils.TEMP_PREFIX`
        are removed; nothing else is ever touched.

        :returns: the list of removed paths.
        """
        return fileutils.remove_leftovers(self.cache_dir)

    def exists(self, image):
        """Return True if ``image`` is in the store."""
        return os.path.exists(self.path(image))

    def touch(self, image):
        """Set the mtime of ``image``'s file to now (keeps it from aging).

        :raises StoreFailed: the file is missing or cannot be touched.
        """
        path = self.path(image)
        with self._store_errors(image, path):
            os.utime(path)

    def inventory(self):
        """Return one dict per image file in :attr:`cache_dir`.

        :returns: a list of ``{'name', 'image_id', 'size', 'allocated',
            'mtime'}``: the file name, the image id when known (else None),
            the apparent size and the allocated bytes (``st_blocks * 512``)
            of the file and its mtime (seconds since the epoch).
        """
        entries = []
        for name in fileutils.sorted_listdir(self.cache_dir):
            if not self.is_cache_file(name):
                continue
            try:
                st = os.lstat(os.path.join(self.cache_dir, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                entries.append({'name': name,
                                'image_id': self.image_id_for(name),
                                'size': st.st_size,
                                'allocated': st.st_blocks * 512,
                                'mtime': st.st_mtime})
        return entries

    def disk_usage(self):
        """Return ``{'total', 'free', 'cache_bytes'}`` in bytes.

        ``total`` and ``free`` (available to the agent) describe the file
        system of :attr:`cache_dir`; ``cache_bytes`` is the space allocated
        to the files :meth:`inventory` lists.
        """
        st = os.statvfs(fileutils.existing_ancestor(self.cache_dir))
        return {'total': st.f_blocks * st.f_frsize,
                'free': st.f_bavail * st.f_frsize,
                'cache_bytes': sum(e['allocated'] for e in self.inventory())}

    def landed_bytes(self):
        """Return the bytes allocated to the images precache landed."""
        return sum(e['allocated'] for e in self.inventory()
                   if self.counts_toward_cap(e['name']))

    def check_space(self, image):
        """Refuse an image that does not fit, before it is downloaded.

        Landing needs the downloaded bytes plus, when the image will be
        converted, its raw form (``virtual_size``, or ``size`` if unknown);
        ``[agent] disk_reserve_mb`` must stay free. The raw form (or the
        downloaded bytes when there is no conversion) counts toward
        ``[agent] cache_size_cap_mb``. An image already in the store needs
        nothing; an image of unknown size passes.

        :raises InsufficientDiskSpace: the file system is too full.
        :raises CacheSizeExceeded: the cap would be exceeded.
        """
        if self.exists(image):
            return
        download = image.size or 0
        final = download
        if self.will_convert(image):
            final = image.virtual_size or download
            needed = download + final
        else:
            needed = download
        reserve = self.conf.agent.disk_reserve_mb * units.Mi
        free = self.disk_usage()['free']
        if needed + reserve > free:
            raise exception.InsufficientDiskSpace(
                path=self.cache_dir, image_id=image.id, needed=needed,
                reserve=reserve, free=free)
        cap = self.conf.agent.cache_size_cap_mb * units.Mi
        if cap:
            used = self.landed_bytes()
            if used + final > cap:
                raise exception.CacheSizeExceeded(
                    image_id=image.id, needed=final, cap=cap, used=used)

    def will_convert(self, image):
        """Return True if landing ``image`` will convert it to raw."""
        return (image.disk_format not in images.RAW_FORMATS and
                self.wants_raw(image))

    def land(self, image, write):
        """Land ``image`` in the store unless it is already there.

        Under :meth:`lock`: an existing file is touched; otherwise a
        temporary file is created beside the final one, ``write`` fills
        it, :meth:`prepare` inspects (and converts) it, and the result gets
        owner, group and mode, is fsynced and renamed into place. On any
        error every temporary file is removed and nothing appears under the
        final name. Space is not checked here: call :meth:`check_space`
        first.

        :param image: a :class:`precache.objects.image.ImageRecord`.
        :param write: a callable taking a binary file object and writing
            the image's verified bytes into it; it may seek over runs of
            zeros (a final seek beyond the end extends the file) and raises
            on any failure, a hash mismatch included.
        :returns: :data:`states.CACHED` or :data:`states.EXISTING`.
        :raises InsufficientDiskSpace: the file system filled up.
        :raises UnsafeImage: the content must not be used.
        :raises ConversionFailed: the conversion to raw failed.
        :raises StoreFailed: another file system error.
        """
        final = self.path(image)
        with self.lock(image):
            if os.path.exists(final):
                self.touch(image)
                result = states.EXISTING
            else:
                self._install(image, final, write)
                result = states.CACHED
        self.after_land(image, result)
        LOG.info('Image %(image)s is %(result)s at %(path)s',
                 {'image': image.id, 'result': result, 'path': final})
        return result

    # Helpers for stores.

    def external_lock(self, name, prefix, lock_dir):
        """Return an oslo.concurrency lock, in-process and across processes.

        The lock file is ``<lock_dir>/<prefix><name>``, the same file (and
        fcntl lock) as ``lockutils.lock(name, lock_file_prefix=prefix,
        external=True, lock_path=lock_dir)`` in any other program. A
        missing lock directory or file is created with the owner of its
        parent directory, so that a service running as that owner can
        still open it.

        :param prefix: the lock file prefix; must end with ``-``.
        """
        with self._store_errors(None, lock_dir):
            self.ensure_directory(lock_dir)
            fileutils.ensure_lock_file(os.path.join(lock_dir, prefix + name),
                                       lock_dir)
        return lockutils.lock(name, lock_file_prefix=prefix, external=True,
                              lock_path=lock_dir)

    def inspect(self, image, path):
        """Refuse ``path`` unless it safely holds ``image.disk_format``.

        The checks of Nova's ``fetch_to_raw``, made by
        :func:`precache.agent.stores.images.inspect_image` with ``[<store>]
        qemu_img_timeout``.

        :returns: the format qemu-img reads the file as.
        :raises UnsafeImage: with the precise reason.
        """
        return images.inspect_image(image, path,
                                    self.options.qemu_img_timeout)

    def convert_to_raw(self, image, path, file_format):
        """Convert ``path`` (of ``file_format``) to a sparse raw temp file.

        The file is made by :meth:`new_temp_file` and filled by
        :func:`precache.agent.stores.images.convert_to_raw`; ``path`` is
        removed once the conversion succeeded.

        :returns: the path of the raw temporary file.
        :raises ConversionFailed: qemu-img failed or did not produce raw.
        :raises InsufficientDiskSpace: the file system filled up.
        """
        raw_path = self.new_temp_file(self.path(image), 'raw')
        try:
            return images.convert_to_raw(image, path, raw_path, file_format,
                                         self.options.qemu_img_timeout)
        except BaseException:
            self.discard_temp_file(raw_path)
            raise
