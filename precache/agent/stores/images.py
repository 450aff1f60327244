"""Image safety checks and qemu-img, as free functions.

What :class:`precache.agent.stores.base.ImageStore` runs on a downloaded
file before it lands, kept apart from the store as Nova keeps
``qemu_img_info``, ``convert_image`` and ``fetch_to_raw`` in
``nova/virt/images.py``: the format inspection of oslo.utils, ``qemu-img
info`` under resource limits with the checks Nova makes on its result, and
``qemu-img convert`` to raw. Every refusal is an :class:`UnsafeImage`
naming its reason.
"""

import os
import shutil
import signal
import subprocess

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import imageutils
from oslo_utils.imageutils import format_inspector
from oslo_utils import units

from precache.common import exception
from precache.common import fileutils

LOG = logging.getLogger(__name__)

#: Glance disk formats whose content may be anything; like Nova, they only
#: have to pass the safety checks and to look raw to qemu-img.
AMI_FORMATS = ('ami', 'aki', 'ari')
#: Disk formats qemu-img reads as raw: they are never converted.
RAW_FORMATS = ('raw', 'iso') + AMI_FORMATS
#: VMDK create-types accepted: the default of Nova's
#: ``[compute] vmdk_allowed_types``; other types may reference host files.
VMDK_ALLOWED_TYPES = ('streamOptimized', 'monolithicSparse')
#: Resource limits of ``qemu-img info`` on untrusted files (Nova's values).
QEMU_IMG_LIMITS = processutils.ProcessLimits(cpu_time=30,
                                             address_space=1 * units.Gi)
_QEMU_IMG = ('env', 'LC_ALL=C', 'LANG=C', 'qemu-img')
#: How to install qemu-img, for the one line a host without it gets.
QEMU_IMG_INSTALL = ('apt-get install qemu-utils (dnf install qemu-img on '
                    'RHEL-like hosts)')
#: Exit codes of a qemu-img killed by its resource limits.
_LIMIT_EXIT_CODES = (-signal.SIGKILL, -signal.SIGXCPU)


def require_qemu_img():
    """Refuse to go on without ``qemu-img`` on the PATH.

    Called where qemu-img will be needed (a store at start, the
    all-in-one run), so that its absence is one line naming the package
    rather than a failure of every image.

    :raises ToolMissing: naming the package to install.
    """
    if shutil.which('qemu-img') is None:
        raise exception.ToolMissing(tool='qemu-img',
                                    install=QEMU_IMG_INSTALL)


def inspect_image(image, path, timeout):
    """Refuse ``path`` unless it safely holds ``image.disk_format``.

    As Nova's ``fetch_to_raw`` does: oslo.utils' format inspector must
    detect the image's disk_format (raw content detected as gpt and AMI
    formats excepted) and pass its safety checks; ``qemu-img info`` must
    then agree on the format and report neither a backing file nor an
    external data file (and, for VMDK, an allowed create-type).

    :param image: the :class:`precache.objects.image.ImageRecord` whose
        content ``path`` holds.
    :param path: the downloaded file.
    :param timeout: seconds ``qemu-img info`` may take.
    :returns: the format qemu-img reads the file as.
    :raises UnsafeImage: with the precise reason.
    """
    expected = inspect_content(image, path)
    info = qemu_img_info(image, path, timeout)
    check_qemu_info(image, info, expected)
    return info.file_format


def convert_to_raw(image, path, raw_path, file_format, timeout):
    """Convert ``path`` (of ``file_format``) to sparse raw in ``raw_path``.

    ``path`` is removed once the conversion succeeded, ``raw_path`` when
    it failed.

    :param image: the :class:`precache.objects.image.ImageRecord` whose
        content ``path`` holds.
    :param path: the inspected file to convert.
    :param raw_path: the (empty) file to write the raw image into.
    :param file_format: the format qemu-img reads ``path`` as.
    :param timeout: seconds ``qemu-img info`` may take on the result.
    :returns: ``raw_path``.
    :raises ConversionFailed: qemu-img failed or did not produce raw.
    :raises InsufficientDiskSpace: the file system filled up.
    """
    try:
        run_qemu_img(image, 'convert',
                     '-t', _cache_mode(os.path.dirname(raw_path)),
                     '-f', file_format, '-O', 'raw', path, raw_path)
        converted = qemu_img_info(image, raw_path, timeout).file_format
        if converted != 'raw':
            raise exception.ConversionFailed(
                image_id=image.id,
                reason='qemu-img produced %s, not raw' % converted)
    except BaseException:
        fileutils.remove_quietly(raw_path)
        raise
    fileutils.remove_quietly(path)
    LOG.debug('Converted image %(image)s from %(format)s to raw',
              {'image': image.id, 'format': file_format})
    return raw_path


def qemu_img_info(image, path, timeout):
    """Run ``qemu-img info`` on the untrusted ``path`` under limits.

    :param image: the :class:`precache.objects.image.ImageRecord` whose
        content ``path`` holds (named in errors).
    :param path: the file to inspect.
    :param timeout: seconds qemu-img may take.
    :returns: an :class:`oslo_utils.imageutils.QemuImgInfo`.
    :raises UnsafeImage: qemu-img failed, timed out or hit its limits.
    """
    out, _err = run_qemu_img(image, 'info', path, '--force-share',
                             '--output=json', limited=True, timeout=timeout)
    return imageutils.QemuImgInfo(out, format='json')


def run_qemu_img(image, *args, limited=False, **kwargs):
    """Run qemu-img; map its failures to precache exceptions.

    :param image: the :class:`precache.objects.image.ImageRecord` the
        command works on (named in errors).
    :param args: qemu-img's arguments, the subcommand first.
    :param limited: apply :data:`QEMU_IMG_LIMITS` (untrusted input).
    :param kwargs: passed to :func:`oslo_concurrency.processutils.execute`.
    :returns: qemu-img's ``(stdout, stderr)``.
    :raises UnsafeImage: ``info`` failed, timed out or hit its limits.
    :raises ConversionFailed: ``convert`` failed.
    :raises InsufficientDiskSpace: the file system filled up.
    :raises StoreFailed: qemu-img is not installed.
    """
    processes = []
    command = _QEMU_IMG + args
    if limited:
        command, limits = _with_limits(command)
        kwargs.update(limits)
    try:
        return processutils.execute(*command,
                                    on_execute=processes.append,
                                    **kwargs)
    except subprocess.TimeoutExpired as exc:
        for process in processes:
            process.kill()
            process.wait()
        raise exception.UnsafeImage(
            image_id=image.id,
            reason='qemu-img %s did not finish within %s s' %
            (args[0], exc.timeout)) from exc
    except processutils.ProcessExecutionError as exc:
        raise _qemu_error(image, args, exc) from exc


def inspect_content(image, path):
    """Run oslo.utils' format inspector on ``path``.

    :param image: the :class:`precache.objects.image.ImageRecord` whose
        content ``path`` holds.
    :param path: the file to inspect.
    :returns: the format qemu-img must then read the file as.
    :raises UnsafeImage: the content is not a safe image of the image's
        disk_format.
    """
    disk_format = image.disk_format
    if not disk_format:
        _refuse(image, 'Glance reports no disk_format; the content is not '
                       'inspected without one')
    if (disk_format not in AMI_FORMATS and
            not format_inspector.get_inspector(disk_format)):
        _refuse(image, 'disk_format %s is not one precache can inspect '
                       'safely (%s)' % (disk_format, ', '.join(
                           sorted(format_inspector.ALL_FORMATS))))
    try:
        inspector = format_inspector.detect_file_format(path)
        if inspector is None:
            raise format_inspector.ImageFormatError('format not decided')
        inspector.safety_check()
    except OSError:
        raise
    except format_inspector.SafetyCheckFailed as exc:
        _refuse(image, 'the content fails the safety checks: %s' % '; '.join(
            '%s: %s' % item for item in sorted(exc.failures.items())))
    except Exception as exc:
        _refuse(image, 'the content is not a valid image: %s' % exc)
    detected = str(inspector)
    agrees = (disk_format in AMI_FORMATS or detected == disk_format or
              (disk_format == 'raw' and detected == 'gpt'))
    if not agrees:
        _refuse(image, 'the content is %s but Glance\'s disk_format is %s' %
                (detected, disk_format))
    return 'raw' if disk_format in RAW_FORMATS else disk_format


def check_qemu_info(image, info, expected):
    """Refuse what ``qemu-img info`` reveals as unsafe or unexpected.

    :param image: the :class:`precache.objects.image.ImageRecord` that
        was inspected.
    :param info: the :class:`oslo_utils.imageutils.QemuImgInfo` of its
        file.
    :param expected: the format qemu-img must read it as.
    :raises UnsafeImage: with the precise reason.
    """
    if info.file_format is None:
        _refuse(image, 'qemu-img info reported no format')
    if info.file_format != expected:
        _refuse(image, 'qemu-img reads the content as %s, expected %s '
                       '(disk_format %s)' % (info.file_format, expected,
                                             image.disk_format))
    if info.backing_file is not None:
        _refuse(image, 'the %s image has a backing file: %s' %
                (info.file_format, info.backing_file))
    data = (info.format_specific or {}).get('data') or {}
    if data.get('data-file') is not None:
        _refuse(image, 'the %s image has an external data file: %s' %
                (info.file_format, data['data-file']))
    if info.file_format == 'vmdk':
        create_type = data.get('create-type')
        if create_type not in VMDK_ALLOWED_TYPES:
            _refuse(image, 'VMDK create-type %s is not one of %s' %
                    (create_type, ', '.join(VMDK_ALLOWED_TYPES)))


def out_of_space(image_id, path, detail):
    """Return the error for a file system that filled up at ``path``.

    :param image_id: the id of the image being stored.
    :param path: the file (or directory) being written.
    :param detail: what failed, for the message.
    :returns: an :class:`InsufficientDiskSpace` telling what to do.
    """
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    return exception.InsufficientDiskSpace(
        message=('The file system of %(dir)s ran out of space while storing '
                 'image %(image_id)s (%(detail)s); its temporary files were '
                 'removed. Free space there or raise [agent] '
                 'disk_reserve_mb.') %
        {'dir': directory, 'image_id': image_id, 'detail': detail},
        path=directory, image_id=image_id)


def _refuse(image, reason):
    raise exception.UnsafeImage(image_id=image.id, reason=reason)


def _with_limits(command):
    """Return ``command`` and execute() arguments applying the limits.

    util-linux's ``prlimit`` sets them as oslo.concurrency's wrapper does
    (soft and hard limit alike, then exec), without starting a Python
    interpreter for every call: two per landed image, which a host that
    lands many images at once (or a test bed of many hosts on few cores)
    feels. Without ``prlimit``, oslo.concurrency's wrapper, as Nova uses.
    """
    prlimit = shutil.which('prlimit')
    if prlimit is None:
        return command, {'prlimit': QEMU_IMG_LIMITS}
    return (prlimit,
            '--as=%d' % QEMU_IMG_LIMITS.address_space,
            '--cpu=%d' % QEMU_IMG_LIMITS.cpu_time,
            '--') + command, {}


def _cache_mode(directory):
    """Return qemu-img's cache mode for a conversion into ``directory``.

    Nova's rule: ``none`` (O_DIRECT: the host's page cache stays the
    guests', and the data is on disk when qemu-img exits) where the file
    system supports it, ``writeback`` (which fsyncs at the end) where it
    does not, such as tmpfs.
    """
    return 'none' if fileutils.supports_direct_io(directory) else 'writeback'


def _qemu_error(image, args, exc):
    command = args[0]
    stderr = (exc.stderr or '').strip()
    if exc.exit_code == 127:
        return exception.StoreFailed(
            image_id=image.id,
            reason='qemu-img is not installed: %s' % QEMU_IMG_INSTALL)
    if 'No space left on device' in stderr:
        return out_of_space(image.id, args[-1], 'qemu-img %s: %s' %
                            (command, stderr))
    if command == 'convert':
        return exception.ConversionFailed(image_id=image.id,
                                          reason=stderr or exc)
    if exc.exit_code in _LIMIT_EXIT_CODES:
        return exception.UnsafeImage(
            image_id=image.id,
            reason='qemu-img info exceeded its resource limits')
    return exception.UnsafeImage(
        image_id=image.id,
        reason='qemu-img info cannot read it: %s' % (stderr or exc))
