"""What every ImageStore does: the landing template, space, recovery.

The behaviour is run against both built-in stores. ``qemu-img`` is not
run here (it is in the functional tests): its ``info`` is faked to report
raw content. The image checks themselves are tested in test_images.
"""

import errno
import json
import os
import random
import uuid

import fixtures
from oslo_concurrency import processutils
from oslo_utils import imageutils

from precache.agent.stores import directory
from precache.agent.stores import nova_libvirt
from precache.common import exception
from precache.common import fileutils
from precache.objects.image import ImageRecord
from precache.objects import states
from precache.tests import base
from precache.tests.unit.agent.stores import test_writeback

DATA = b'precache' * 8192
MiB = 1024 * 1024


def make_image(image_id=None, data=DATA, **fields):
    """Return an ImageRecord of raw ``data``; ``fields`` override."""
    fields.setdefault('disk_format', 'raw')
    fields.setdefault('size', len(data))
    if image_id is None:
        image_id = str(uuid.uuid4())
    return ImageRecord(id=image_id, **fields)


def writer(data, calls=None):
    """Return a ``write`` callable writing ``data``; counts its calls."""
    def write(fileobj):
        if calls is not None:
            calls.append(fileobj.name)
        fileobj.write(data)
    return write


def fake_qemu_img_info(image, path, timeout):
    """Stand-in for ``images.qemu_img_info``: raw, no backing file."""
    return imageutils.QemuImgInfo(json.dumps(
        {'format': 'raw', 'virtual-size': os.path.getsize(path),
         'filename': path}), format='json')


def nova_store(test, **flags):
    """Build a NovaLibvirtStore below ``test.tempdir`` (no nova.conf)."""
    test.register_plugin_opts(nova_libvirt.NovaLibvirtStore)
    flags.setdefault('instances_path', os.path.join(test.tempdir, 'nova'))
    flags.setdefault('read_nova_config', False)
    flags.setdefault('state_dir', os.path.join(test.tempdir, 'state'))
    os.makedirs(flags['instances_path'], exist_ok=True)
    test.flags(group='nova_libvirt', **flags)
    return nova_libvirt.NovaLibvirtStore(test.conf)


def directory_store(test, **flags):
    """Build a DirectoryStore below ``test.tempdir``."""
    test.register_plugin_opts(directory.DirectoryStore)
    flags.setdefault('path', os.path.join(test.tempdir, 'images'))
    test.flags(group='directory_store', **flags)
    return directory.DirectoryStore(test.conf)


class StoreTestCase(base.TestCase):
    """A test case with qemu-img info faked and no disk reserve."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'precache.agent.stores.images.qemu_img_info',
            fake_qemu_img_info))
        self.flags(group='agent', disk_reserve_mb=0)

    def cache_files(self, store):
        """Names in the store's directory, lock directory excepted."""
        return sorted(n for n in os.listdir(store.cache_dir)
                      if n != '.locks')


class LandingTests(object):
    """Behaviour shared by every store; mixed into a StoreTestCase."""

    #: Whether the store converts qcow2 images to raw by default.
    converts = False

    def make_store(self, **flags):
        raise NotImplementedError()

    def setUp(self):
        super().setUp()
        self.store = self.make_store()

    def test_land_writes_final_file(self):
        image = make_image()
        self.assertEqual(states.CACHED,
                         self.store.land(image, writer(DATA)))
        with open(self.store.path(image), 'rb') as landed:
            self.assertEqual(DATA, landed.read())
        self.assertTrue(self.store.exists(image))
        self.assertEqual([os.path.basename(self.store.path(image))],
                         self.cache_files(self.store))

    def test_land_starts_the_writeback_while_writing(self):
        self.useFixture(fixtures.MonkeyPatch(
            'precache.agent.stores.writeback.STEP', 16 * 1024))
        recorded = self.useFixture(test_writeback.RecordedWriteback())
        data = random.Random(5).randbytes(MiB)

        def write(fileobj):
            for start in range(0, len(data), 8192):
                fileobj.write(data[start:start + 8192])
            # The first requests are made while the file is written.
            self.assertTrue(recorded.called.wait(5))

        image = make_image(data=data)
        self.assertEqual(states.CACHED, self.store.land(image, write))
        with open(self.store.path(image), 'rb') as landed:
            self.assertEqual(data, landed.read())
        # One step behind the writes at most; requests made while the
        # thread was busy are merged.
        ends = [end for _offset, end in recorded.calls]
        self.assertEqual(sorted(ends), ends)
        self.assertLessEqual(ends[-1], len(data) - 16 * 1024)

    def test_land_mode_0644(self):
        self.addCleanup(os.umask, os.umask(0o077))
        image = make_image()
        self.store.land(image, writer(DATA))
        self.assertEqual(0o644, os.stat(self.store.path(image)).st_mode
                         & 0o7777)

    def test_land_configured_mode(self):
        self.store = self.make_store(file_mode='0640')
        image = make_image()
        self.store.land(image, writer(DATA))
        self.assertEqual(0o640, os.stat(self.store.path(image)).st_mode
                         & 0o7777)

    def test_land_configured_owner(self):
        if os.geteuid() != 0:
            self.skipTest('changing a file owner needs root')
        self.store = self.make_store(file_owner='nobody', file_group='0')
        image = make_image()
        self.store.land(image, writer(DATA))
        st = os.stat(self.store.path(image))
        self.assertEqual((65534, 0), (st.st_uid, st.st_gid))

    def test_existing_is_touched_not_written(self):
        image = make_image()
        self.store.land(image, writer(DATA))
        os.utime(self.store.path(image), (1000, 1000))
        calls = []
        self.assertEqual(states.EXISTING,
                         self.store.land(image, writer(b'other', calls)))
        self.assertEqual([], calls)
        self.assertGreater(os.path.getmtime(self.store.path(image)), 1000)
        with open(self.store.path(image), 'rb') as landed:
            self.assertEqual(DATA, landed.read())

    def test_temp_name(self):
        image = make_image()
        calls = []
        self.store.land(image, writer(DATA, calls))
        name = os.path.basename(calls[0])
        self.assertTrue(name.startswith(fileutils.TEMP_PREFIX))
        self.assertEqual(os.path.dirname(self.store.path(image)),
                         os.path.dirname(calls[0]))
        # Nova's cache manager acts on <sha1> and <sha1>_<anything>.
        self.assertNotEqual(40, len(name))
        self.assertNotEqual('_', name[40])

    def test_write_failure_leaves_nothing(self):
        image = make_image()

        def write(fileobj):
            fileobj.write(DATA)
            raise exception.HashMismatch(image_id=image.id, algo='sha512',
                                         actual='a', expected='b')

        self.assertRaises(exception.HashMismatch, self.store.land, image,
                          write)
        self.assertEqual([], self.cache_files(self.store))
        self.assertFalse(self.store.exists(image))

    def test_write_enospc_is_insufficient_space(self):
        image = make_image()

        def write(fileobj):
            fileobj.write(DATA)
            raise OSError(errno.ENOSPC, 'No space left on device')

        exc = self.assertRaises(exception.InsufficientDiskSpace,
                                self.store.land, image, write)
        self.assertIn(image.id, str(exc))
        self.assertIn('ran out of space', str(exc))
        self.assertEqual([], self.cache_files(self.store))

    def test_unsafe_content_leaves_nothing(self):
        image = make_image(disk_format='qcow2')
        exc = self.assertRaises(exception.UnsafeImage, self.store.land,
                                image, writer(DATA))
        self.assertIn("the content is raw but Glance's disk_format is qcow2",
                      str(exc))
        self.assertEqual([], self.cache_files(self.store))

    def test_rename_failure_is_store_failed(self):
        image = make_image()
        self.useFixture(fixtures.MockPatch(
            'os.rename', side_effect=OSError(errno.EIO, 'I/O error')))
        exc = self.assertRaises(exception.StoreFailed, self.store.land,
                                image, writer(DATA))
        self.assertIn(self.store.path(image), str(exc))
        self.assertIn('I/O error', str(exc))
        self.assertEqual([], self.cache_files(self.store))

    def test_seek_over_zeros_makes_a_hole(self):
        image = make_image(size=4 * MiB + 1)

        def write(fileobj):
            fileobj.write(b'x')
            fileobj.seek(4 * MiB, os.SEEK_CUR)

        self.store.land(image, write)
        st = os.stat(self.store.path(image))
        self.assertEqual(4 * MiB + 1, st.st_size)
        self.assertLess(st.st_blocks * 512, MiB)

    def test_recover_removes_only_temp_files(self):
        image = make_image()
        self.store.land(image, writer(DATA))
        others = ['0' * 40 + '_20', 'swap_512', 'notes.txt', '.hidden']
        temps = [fileutils.TEMP_PREFIX + 'abc.part',
                 fileutils.TEMP_PREFIX + 'def.raw']
        for name in others + temps:
            with open(os.path.join(self.store.cache_dir, name), 'w'):
                pass
        removed = self.store.recover()
        self.assertEqual(sorted(os.path.join(self.store.cache_dir, n)
                                for n in temps), sorted(removed))
        self.assertEqual(
            sorted(others + [os.path.basename(self.store.path(image))]),
            self.cache_files(self.store))

    def test_recover_leaves_a_temp_file_its_writer_holds(self):
        # Another store instance stands for another process: a daemon's
        # previous instance still writing while the new one starts.
        writer_store = self.make_store()
        writer_store.ensure_directory(self.store.cache_dir)
        held = writer_store.new_temp_file(self.store.path(make_image()),
                                          'part')
        stale = os.path.join(self.store.cache_dir,
                             fileutils.TEMP_PREFIX + 'stale.part')
        with open(stale, 'w'):
            pass
        self.assertEqual([stale], self.store.recover())
        self.assertTrue(os.path.exists(held))
        writer_store.discard_temp_file(held)
        self.assertFalse(os.path.exists(held))
        self.assertEqual([], self.store.recover())

    def test_landing_releases_its_temp_file_locks(self):
        image = make_image()
        self.store.land(image, writer(DATA))
        self.assertEqual({}, self.store._held)

    def test_failed_landing_removes_and_releases_its_temp_files(self):
        def failing(fileobj):
            fileobj.write(DATA[:10])
            raise exception.Interrupted(image_id='x', reason='stopping')

        image = make_image()
        self.assertRaises(exception.Interrupted, self.store.land, image,
                          failing)
        self.assertEqual({}, self.store._held)
        self.assertEqual([], self.cache_files(self.store))

    def test_inventory(self):
        image = make_image()
        self.store.land(image, writer(DATA))
        [entry] = self.store.inventory()
        st = os.stat(self.store.path(image))
        self.assertEqual({'name': os.path.basename(self.store.path(image)),
                          'image_id': image.id, 'size': len(DATA),
                          'allocated': st.st_blocks * 512,
                          'mtime': st.st_mtime}, entry)

    def test_disk_usage(self):
        self.assertEqual(0, self.store.disk_usage()['cache_bytes'])
        self.store.land(make_image(), writer(DATA))
        usage = self.store.disk_usage()
        self.assertEqual({'total', 'free', 'cache_bytes'}, set(usage))
        self.assertGreaterEqual(usage['cache_bytes'], len(DATA))
        self.assertGreater(usage['total'], usage['free'])

    def test_check_space_reserve(self):
        self.flags(group='agent', disk_reserve_mb=2 ** 40)
        image = make_image()
        exc = self.assertRaises(exception.InsufficientDiskSpace,
                                self.store.check_space, image)
        self.assertIn(image.id, str(exc))
        self.assertIn(self.store.cache_dir, str(exc))
        self.assertIn('need %d bytes plus a reserve of %d' % (
            len(DATA), 2 ** 60), str(exc))

    def test_check_space_counts_conversion(self):
        free = {'total': 10 * MiB, 'free': 10 * MiB, 'cache_bytes': 0}
        self.useFixture(fixtures.MockPatchObject(
            self.store, 'disk_usage', return_value=free))
        image = make_image(disk_format='qcow2', size=4 * MiB,
                           virtual_size=7 * MiB)
        if self.converts:
            exc = self.assertRaises(exception.InsufficientDiskSpace,
                                    self.store.check_space, image)
            self.assertIn('need %d bytes' % (11 * MiB), str(exc))
        else:
            self.store.check_space(image)
        self.store.check_space(make_image(size=10 * MiB))

    def test_check_space_cap(self):
        self.flags(group='agent', cache_size_cap_mb=1)
        data = random.Random(600).randbytes(600 * 1024)
        self.store.check_space(make_image(data=data))
        self.store.land(make_image(data=data), writer(data))
        image = make_image(data=data)
        exc = self.assertRaises(exception.CacheSizeExceeded,
                                self.store.check_space, image)
        self.assertIn('cap of %d bytes' % MiB, str(exc))
        self.assertIn(image.id, str(exc))

    def test_check_space_existing_needs_nothing(self):
        image = make_image()
        self.store.land(image, writer(DATA))
        self.flags(group='agent', disk_reserve_mb=2 ** 40)
        self.store.check_space(image)


class TestNovaLibvirtLanding(LandingTests, StoreTestCase):
    converts = True

    def make_store(self, **flags):
        return nova_store(self, **flags)


class TestDirectoryLanding(LandingTests, StoreTestCase):

    def make_store(self, **flags):
        return directory_store(self, **flags)


class TestQemuImgRequired(base.TestCase):
    """A store does not start on a host without qemu-img."""

    def test_each_store_names_the_package_to_install(self):
        self.useFixture(fixtures.MockPatch(
            'precache.agent.stores.images.shutil.which', return_value=None))
        for build in (nova_store, directory_store):
            exc = self.assertRaises(exception.ToolMissing, build, self)
            self.assertEqual(
                'qemu-img is not installed on this host: apt-get install '
                'qemu-utils (dnf install qemu-img on RHEL-like hosts)',
                str(exc))
            self.assertIsInstance(exc, exception.ConfigurationError)


class TestConversion(base.TestCase):
    """The store's conversion to raw (qemu-img itself is faked)."""

    def setUp(self):
        super().setUp()
        self.store = directory_store(self)
        self.image = make_image()
        self.execute = self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute',
            return_value=('{"format": "raw", "virtual-size": 1}', ''))).mock

    def test_conversion_failure_leaves_nothing(self):
        self.execute.side_effect = processutils.ProcessExecutionError(
            exit_code=1, stderr='qemu-img: Could not open x')
        os.makedirs(self.store.cache_dir)
        path = os.path.join(self.store.cache_dir, fileutils.TEMP_PREFIX + 'x')
        open(path, 'w').close()
        self.assertRaises(exception.ConversionFailed,
                          self.store.convert_to_raw, self.image, path,
                          'qcow2')
        self.assertEqual([os.path.basename(path)],
                         os.listdir(self.store.cache_dir))

    def convert_cache_mode(self, direct_io):
        self.useFixture(fixtures.MockPatch(
            'precache.common.fileutils.supports_direct_io',
            return_value=direct_io))
        path = os.path.join(self.store.cache_dir, 'x')
        os.makedirs(self.store.cache_dir)
        open(path, 'w').close()
        self.store.convert_to_raw(self.image, path, 'qcow2')
        convert = self.execute.call_args_list[0][0]
        return convert[convert.index('-t') + 1]

    def test_convert_cache_none_with_direct_io(self):
        self.assertEqual('none', self.convert_cache_mode(True))

    def test_convert_cache_writeback_without_direct_io(self):
        self.assertEqual('writeback', self.convert_cache_mode(False))


class TestSupportsDirectIO(base.TestCase):
    """The O_DIRECT probe, as Nova makes it before ``-t none``."""

    def setUp(self):
        super().setUp()
        self.directory = self.useFixture(fixtures.TempDir()).path

    def test_probe_leaves_nothing(self):
        self.assertIsInstance(
            fileutils.supports_direct_io(self.directory), bool)
        self.assertEqual([], os.listdir(self.directory))

    def test_einval_means_unsupported(self):
        self.useFixture(fixtures.MockPatch(
            'os.write', side_effect=OSError(errno.EINVAL, 'Invalid')))
        self.assertFalse(fileutils.supports_direct_io(self.directory))
        self.assertEqual([], os.listdir(self.directory))

    def test_other_errors_propagate(self):
        self.useFixture(fixtures.MockPatch(
            'os.write', side_effect=OSError(errno.ENOSPC, 'Full')))
        self.assertRaises(OSError, fileutils.supports_direct_io,
                          self.directory)
        self.assertEqual([], os.listdir(self.directory))
