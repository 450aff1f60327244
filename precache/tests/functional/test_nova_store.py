"""The nova-libvirt store with real qemu-img, Nova's real lock, a full disk.

Needs ``qemu-img`` (qemu-utils); the full-disk tests need root to mount a
small tmpfs and are skipped otherwise.
"""

import os
import random
import shutil
import subprocess
import sys
import threading

from precache.agent.stores import images
from precache.common import exception
from precache.objects import states
from precache.tests import base
from precache.tests.unit.agent.stores import test_base as helpers

MiB = 1024 * 1024
# What nova.utils.synchronized(<sha1>, external=True, lock_path=...) does
# around Nova's fetch into the image cache (imagebackend.Image.cache);
# after the release line it may write the base file as Nova's fetch would.
NOVA_LOCK_HOLDER = """
from oslo_concurrency import lockutils
import sys

synchronized = lockutils.synchronized_with_prefix('nova-')


@synchronized(sys.argv[1], external=True, lock_path=sys.argv[2])
def fetch_func_sync():
    print('locked', flush=True)
    if sys.stdin.readline().strip() == 'fetch':
        with open(sys.argv[3], 'wb') as base_file:
            base_file.write(b'fetched by nova')


fetch_func_sync()
"""
# Tries Nova's lock without waiting; prints whether it got it.
NOVA_LOCK_PROBE = """
from oslo_concurrency import lockutils
import sys

lock = lockutils.external_lock(sys.argv[1], lock_file_prefix='nova-',
                               lock_path=sys.argv[2])
print(lock.acquire(blocking=False))
"""


def qemu_img(*args):
    subprocess.run(('qemu-img',) + args, check=True, capture_output=True)


def file_writer(path):
    """Return a ``write`` callable copying the file at ``path``."""
    def write(fileobj):
        with open(path, 'rb') as source:
            shutil.copyfileobj(source, fileobj)
    return write


def read(path):
    with open(path, 'rb') as image_file:
        return image_file.read()


class NovaStoreTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which('qemu-img'):
            self.skipTest('qemu-img is not installed (qemu-utils)')
        self.flags(group='agent', disk_reserve_mb=0)
        self.work = os.path.join(self.tempdir, 'work')
        os.mkdir(self.work)
        self.store = helpers.nova_store(self)

    def make_raw(self, name, virtual=8 * MiB, data_mib=(0, 3), seed=1):
        """A sparse raw disk with 1 MiB of random data at ``data_mib``."""
        path = os.path.join(self.work, name)
        rand = random.Random(seed)
        with open(path, 'wb') as raw:
            for offset in data_mib:
                raw.seek(offset * MiB)
                raw.write(rand.randbytes(MiB))
            raw.truncate(virtual)
        return path

    def make_qcow2(self, name, raw_path, *options):
        path = os.path.join(self.work, name)
        qemu_img('convert', '-f', 'raw', '-O', 'qcow2', *options, raw_path,
                 path)
        return path

    def record(self, path, disk_format, virtual_size=None):
        return helpers.make_image(disk_format=disk_format,
                                  size=os.path.getsize(path),
                                  virtual_size=virtual_size)

    def assertNothingLanded(self, store=None):
        store = store or self.store
        names = (os.listdir(store.cache_dir)
                 if os.path.isdir(store.cache_dir) else [])
        self.assertEqual([], names)


class TestInspectAndConvert(NovaStoreTestCase):

    def test_qcow2_lands_as_raw(self):
        raw = self.make_raw('disk.raw')
        qcow2 = self.make_qcow2('disk.qcow2', raw)
        image = self.record(qcow2, 'qcow2', virtual_size=8 * MiB)
        self.assertEqual(states.CACHED,
                         self.store.land(image, file_writer(qcow2)))
        final = self.store.path(image)
        self.assertEqual(os.path.join(self.store.cache_dir,
                                      image.cache_name), final)
        self.assertEqual([image.cache_name], os.listdir(self.store.cache_dir))
        self.assertEqual(read(raw), read(final))
        qemu_img('compare', '-f', 'raw', '-F', 'qcow2', final, qcow2)
        self.assertEqual('raw', images.qemu_img_info(
            image, final, self.store.options.qemu_img_timeout).file_format)
        st = os.stat(final)
        self.assertEqual(0o644, st.st_mode & 0o7777)
        self.assertEqual(8 * MiB, st.st_size)
        self.assertLess(st.st_blocks * 512, 4 * MiB)  # still sparse

    def test_raw_lands_unchanged(self):
        raw = self.make_raw('disk.raw')
        image = self.record(raw, 'raw')
        self.store.land(image, file_writer(raw))
        self.assertEqual(read(raw), read(self.store.path(image)))

    def test_force_raw_images_false_keeps_qcow2(self):
        store = helpers.nova_store(self, force_raw_images=False)
        qcow2 = self.make_qcow2('disk.qcow2', self.make_raw('disk.raw'))
        image = self.record(qcow2, 'qcow2')
        store.land(image, file_writer(qcow2))
        self.assertEqual(read(qcow2), read(store.path(image)))

    def make_overlay(self):
        """A qcow2 overlay whose backing file is another qcow2."""
        base_qcow2 = self.make_qcow2('base.qcow2', self.make_raw('disk.raw'))
        overlay = os.path.join(self.work, 'overlay.qcow2')
        qemu_img('create', '-f', 'qcow2', '-b', base_qcow2, '-F', 'qcow2',
                 overlay)
        return overlay, base_qcow2

    def test_backing_file_refused(self):
        overlay, _base_qcow2 = self.make_overlay()
        image = self.record(overlay, 'qcow2')
        exc = self.assertRaises(exception.UnsafeImage, self.store.land,
                                image, file_writer(overlay))
        self.assertIn('backing_file: Image has a backing file', str(exc))
        self.assertIn(image.id, str(exc))
        self.assertNothingLanded()

    def test_data_file_refused(self):
        qcow2 = os.path.join(self.work, 'external.qcow2')
        qemu_img('create', '-f', 'qcow2', '-o', 'data_file=' +
                 os.path.join(self.work, 'data.raw'), qcow2, '1M')
        image = self.record(qcow2, 'qcow2')
        exc = self.assertRaises(exception.UnsafeImage, self.store.land,
                                image, file_writer(qcow2))
        self.assertIn('data_file: Image has data_file set', str(exc))
        self.assertNothingLanded()

    def test_disk_format_mismatch_refused(self):
        qcow2 = self.make_qcow2('disk.qcow2', self.make_raw('disk.raw'))
        image = self.record(qcow2, 'raw')
        exc = self.assertRaises(exception.UnsafeImage, self.store.land,
                                image, file_writer(qcow2))
        self.assertIn("the content is qcow2 but Glance's disk_format is raw",
                      str(exc))
        self.assertNothingLanded()

    def test_qemu_img_info_of_a_backed_image(self):
        # The second line of defence, behind the format inspector.
        overlay, base_qcow2 = self.make_overlay()
        image = self.record(overlay, 'qcow2')
        info = images.qemu_img_info(image, overlay,
                                    self.store.options.qemu_img_timeout)
        exc = self.assertRaises(exception.UnsafeImage,
                                images.check_qemu_info, image, info, 'qcow2')
        self.assertIn('has a backing file: ' + base_qcow2, str(exc))

    def test_directory_store_keeps_or_converts(self):
        qcow2 = self.make_qcow2('disk.qcow2', self.make_raw('disk.raw'))
        image = self.record(qcow2, 'qcow2')
        kept = helpers.directory_store(self)
        kept.land(image, file_writer(qcow2))
        self.assertEqual(read(qcow2), read(kept.path(image)))
        converted = helpers.directory_store(
            self, path=os.path.join(self.tempdir, 'raw'),
            convert_to_raw=True)
        converted.land(image, file_writer(qcow2))
        qemu_img('compare', '-f', 'raw', '-F', 'qcow2',
                 converted.path(image), qcow2)


class TestNovaLock(NovaStoreTestCase):
    """The store takes the very lock Nova takes for a base file."""

    def hold_nova_lock(self, image):
        holder = subprocess.Popen(
            [sys.executable, '-c', NOVA_LOCK_HOLDER, image.cache_name,
             self.store.lock_dir, self.store.path(image)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait, 30)
        self.addCleanup(holder.kill)
        self.assertEqual('locked\n', holder.stdout.readline())
        return holder

    def land_in_thread(self, image, write):
        results = []
        thread = threading.Thread(
            target=lambda: results.append(self.store.land(image, write)))
        thread.start()
        self.addCleanup(thread.join, 30)
        return thread, results

    def release(self, holder, line):
        holder.stdin.write(line + '\n')
        holder.stdin.flush()
        self.assertEqual(0, holder.wait(timeout=30))

    def test_waits_for_nova(self):
        os.makedirs(self.store.cache_dir)
        image = helpers.make_image()
        holder = self.hold_nova_lock(image)
        released = threading.Event()
        wrote = threading.Event()
        order = []

        def write(fileobj):
            order.append(released.is_set())
            wrote.set()
            fileobj.write(helpers.DATA)

        thread, results = self.land_in_thread(image, write)
        self.assertFalse(wrote.wait(1.0))
        self.assertFalse(self.store.exists(image))
        released.set()
        self.release(holder, 'release')
        thread.join(30)
        self.assertEqual([states.CACHED], results)
        self.assertEqual([True], order)
        self.assertEqual(helpers.DATA, read(self.store.path(image)))

    def test_nova_fetched_meanwhile(self):
        os.makedirs(self.store.cache_dir)
        image = helpers.make_image()
        holder = self.hold_nova_lock(image)
        calls = []
        thread, results = self.land_in_thread(image,
                                              helpers.writer(b'x', calls))
        self.release(holder, 'fetch')
        thread.join(30)
        self.assertEqual([states.EXISTING], results)
        self.assertEqual([], calls)
        self.assertEqual(b'fetched by nova', read(self.store.path(image)))

    def test_nova_cannot_lock_while_landing(self):
        image = helpers.make_image()
        probes = []

        def write(fileobj):
            probes.append(subprocess.run(
                [sys.executable, '-c', NOVA_LOCK_PROBE, image.cache_name,
                 self.store.lock_dir], capture_output=True, text=True,
                check=True).stdout)
            fileobj.write(helpers.DATA)

        self.store.land(image, write)
        self.assertEqual(['False\n'], probes)
        self.assertTrue(os.path.isfile(os.path.join(
            self.tempdir, 'nova', 'locks', 'nova-' + image.cache_name)))


class TestFullDisk(NovaStoreTestCase):
    """An 8 MiB tmpfs as instances_path."""

    def setUp(self):
        super().setUp()
        instances = os.path.join(self.tempdir, 'tmpfs')
        os.mkdir(instances)
        if os.geteuid() != 0:
            self.skipTest('mounting a tmpfs needs root')
        mounted = subprocess.run(
            ['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', instances],
            capture_output=True, text=True)
        if mounted.returncode:
            self.skipTest('cannot mount a tmpfs: %s' % mounted.stderr)
        # Lazy, as in test_distribution: the store's writeback thread
        # closes its duplicate of a failed landing's (already removed)
        # temporary file a moment after the failure, never waited for.
        self.addCleanup(subprocess.run, ['umount', '-l', instances],
                        check=True)
        self.store = helpers.nova_store(self, instances_path=instances)

    def test_check_space_refuses(self):
        image = helpers.make_image(size=16 * MiB)
        exc = self.assertRaises(exception.InsufficientDiskSpace,
                                self.store.check_space, image)
        self.assertIn('need %d bytes' % (16 * MiB), str(exc))
        self.assertIn(self.store.cache_dir, str(exc))

    def test_download_fills_the_disk(self):
        raw = self.make_raw('big.raw', virtual=12 * MiB,
                            data_mib=range(12))
        image = helpers.make_image(size=None)  # Glance did not say
        exc = self.assertRaises(exception.InsufficientDiskSpace,
                                self.store.land, image, file_writer(raw))
        self.assertIn('ran out of space while storing image %s' % image.id,
                      str(exc))
        self.assertIn(self.store.cache_dir, str(exc))
        self.assertNothingLanded()

    def test_conversion_fills_the_disk(self):
        # An image already there, which the failure must not touch.
        small = self.make_raw('small.raw', virtual=MiB, data_mib=(0,),
                              seed=2)
        landed = self.record(small, 'raw')
        self.store.land(landed, file_writer(small))
        before = os.stat(self.store.path(landed))
        raw = self.make_raw('big.raw', virtual=5 * MiB, data_mib=range(5))
        qcow2 = self.make_qcow2('big.qcow2', raw)
        image = self.record(qcow2, 'qcow2')
        # Unknown virtual_size: check_space assumes size, and refuses.
        self.assertRaises(exception.InsufficientDiskSpace,
                          self.store.check_space, image)
        exc = self.assertRaises(exception.InsufficientDiskSpace,
                                self.store.land, image, file_writer(qcow2))
        self.assertIn('qemu-img convert', str(exc))
        self.assertIn(image.id, str(exc))
        # No temporary file is left, and the other image is as it was.
        self.assertEqual([os.path.basename(self.store.path(landed))],
                         os.listdir(self.store.cache_dir))
        after = os.stat(self.store.path(landed))
        self.assertEqual((before.st_ino, before.st_size, before.st_mtime),
                         (after.st_ino, after.st_size, after.st_mtime))
        with open(small, 'rb') as f, open(self.store.path(landed),
                                          'rb') as g:
            self.assertEqual(f.read(), g.read())
