"""The image checks and qemu-img runs of images.py, qemu-img faked.

``qemu-img`` itself is run in the functional tests.
"""

import json
import os
import subprocess
from unittest import mock

import fixtures
from oslo_concurrency import processutils
from oslo_utils import imageutils

from precache.agent.stores import images
from precache.common import exception
from precache.tests import base
from precache.tests.unit.agent.stores import test_base as helpers

DATA = helpers.DATA
MiB = helpers.MiB
make_image = helpers.make_image


def qemu_info(file_format='raw', **fields):
    """A QemuImgInfo as parsed from ``qemu-img info --output=json``."""
    fields.update({'format': file_format, 'virtual-size': MiB,
                   'filename': 'x'})
    return imageutils.QemuImgInfo(json.dumps(fields), format='json')


class TestInspection(base.TestCase):
    """The format checks Nova's fetch_to_raw makes, without qemu-img."""

    def content(self, data):
        path = os.path.join(self.tempdir, 'image')
        with open(path, 'wb') as image_file:
            image_file.write(data)
        return path

    def refused(self, func, *args):
        return str(self.assertRaises(exception.UnsafeImage, func, *args))

    def test_raw(self):
        self.assertEqual('raw', images.inspect_content(
            make_image(), self.content(DATA)))

    def test_whole_disk_raw_detected_as_gpt(self):
        mbr = bytearray(1024)
        mbr[446:462] = bytes([0x80, 0, 2, 0, 0x83, 0, 0, 0,
                              1, 0, 0, 0, 1, 0, 0, 0])
        mbr[510:512] = b'\x55\xaa'
        self.assertEqual('raw', images.inspect_content(
            make_image(), self.content(bytes(mbr) + DATA)))

    def test_ami_formats_are_raw(self):
        for disk_format in ('ami', 'aki', 'ari'):
            self.assertEqual('raw', images.inspect_content(
                make_image(disk_format=disk_format), self.content(DATA)))

    def test_no_disk_format(self):
        self.assertIn('no disk_format', self.refused(
            images.inspect_content, make_image(disk_format=None),
            self.content(DATA)))

    def test_uninspectable_disk_format(self):
        self.assertIn('disk_format ploop is not one precache can inspect',
                      self.refused(images.inspect_content,
                                   make_image(disk_format='ploop'),
                                   self.content(DATA)))

    def test_qemu_format_must_agree(self):
        self.assertIn('qemu-img reads the content as qcow2, expected raw',
                      self.refused(images.check_qemu_info, make_image(),
                                   qemu_info('qcow2'), 'raw'))

    def test_qemu_backing_file(self):
        self.assertIn('has a backing file: /etc/shadow', self.refused(
            images.check_qemu_info, make_image(disk_format='qcow2'),
            qemu_info('qcow2', **{'backing-filename': '/etc/shadow'}),
            'qcow2'))

    def test_qemu_data_file(self):
        info = qemu_info('qcow2', **{'format-specific': {
            'type': 'qcow2', 'data': {'data-file': '/dev/sda'}}})
        self.assertIn('has an external data file: /dev/sda', self.refused(
            images.check_qemu_info, make_image(disk_format='qcow2'),
            info, 'qcow2'))

    def test_qemu_vmdk_create_type(self):
        image = make_image(disk_format='vmdk')
        for create_type, allowed in (('monolithicSparse', True),
                                     ('streamOptimized', True),
                                     ('monolithicFlat', False)):
            info = qemu_info('vmdk', **{'format-specific': {
                'type': 'vmdk', 'data': {'create-type': create_type}}})
            if allowed:
                images.check_qemu_info(image, info, 'vmdk')
            else:
                self.assertIn('VMDK create-type monolithicFlat', self.refused(
                    images.check_qemu_info, image, info, 'vmdk'))


class TestQemuImgFailures(base.TestCase):
    """How qemu-img failures are reported (qemu-img itself is faked)."""

    def setUp(self):
        super().setUp()
        self.image = make_image()

    def execute_fails(self, error):
        self.process = mock.Mock()

        def execute(*cmd, on_execute=None, **kwargs):
            on_execute(self.process)
            raise error

        self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute', side_effect=execute))

    def run_qemu_img(self, *args):
        return images.run_qemu_img(self.image, *args)

    def test_timeout_kills_qemu_img(self):
        self.execute_fails(subprocess.TimeoutExpired('qemu-img', 120))
        exc = self.assertRaises(exception.UnsafeImage, self.run_qemu_img,
                                'info', 'x')
        self.assertIn('qemu-img info did not finish within 120 s', str(exc))
        self.process.kill.assert_called_once_with()
        self.process.wait.assert_called_once_with()

    def test_not_installed(self):
        self.execute_fails(processutils.ProcessExecutionError(
            exit_code=127, stderr='env: qemu-img: No such file'))
        exc = self.assertRaises(exception.StoreFailed, self.run_qemu_img,
                                'info', 'x')
        self.assertIn('install qemu-utils', str(exc))

    def test_resource_limits(self):
        for exit_code in (-9, -24):  # SIGKILL, SIGXCPU
            self.execute_fails(processutils.ProcessExecutionError(
                exit_code=exit_code))
            exc = self.assertRaises(exception.UnsafeImage,
                                    self.run_qemu_img, 'info', 'x')
            self.assertIn('exceeded its resource limits', str(exc))

    def test_conversion_failure(self):
        self.execute_fails(processutils.ProcessExecutionError(
            exit_code=1, stderr='qemu-img: Could not open x'))
        exc = self.assertRaises(exception.ConversionFailed,
                                self.run_qemu_img, 'convert', 'x', 'y')
        self.assertIn('Could not open x', str(exc))

    def test_conversion_out_of_space(self):
        self.execute_fails(processutils.ProcessExecutionError(
            exit_code=1, stderr='qemu-img: error while writing at byte 0: '
                                'No space left on device'))
        exc = self.assertRaises(exception.InsufficientDiskSpace,
                                self.run_qemu_img, 'convert', 'x',
                                os.path.join(self.tempdir, 'y'))
        self.assertIn('The file system of %s ran out of space' %
                      self.tempdir, str(exc))


class TestQemuImgLimits(base.TestCase):
    """How qemu-img is run: the resource limits of ``qemu-img info``."""

    def setUp(self):
        super().setUp()
        self.image = make_image()
        self.execute = self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute',
            return_value=('{"format": "raw", "virtual-size": 1}', ''))).mock

    def which(self, path):
        self.useFixture(fixtures.MockPatch(
            'precache.agent.stores.images.shutil.which', return_value=path))

    def test_info_limited_by_util_linux_prlimit(self):
        self.which('/usr/bin/prlimit')
        images.qemu_img_info(self.image, 'x', 120)
        args, kwargs = self.execute.call_args
        self.assertEqual(('/usr/bin/prlimit', '--as=%d' % (1024 * MiB),
                          '--cpu=30', '--', 'env', 'LC_ALL=C', 'LANG=C',
                          'qemu-img', 'info', 'x'), args[:10])
        self.assertNotIn('prlimit', kwargs)

    def test_info_limited_by_oslo_wrapper_without_prlimit(self):
        self.which(None)
        images.qemu_img_info(self.image, 'x', 120)
        args, kwargs = self.execute.call_args
        self.assertEqual(('env', 'LC_ALL=C', 'LANG=C', 'qemu-img', 'info'),
                         args[:5])
        self.assertIs(images.QEMU_IMG_LIMITS, kwargs['prlimit'])

    def test_convert_not_limited(self):
        self.which('/usr/bin/prlimit')
        images.run_qemu_img(self.image, 'convert', 'x', 'y')
        args, kwargs = self.execute.call_args
        self.assertEqual(('env', 'LC_ALL=C', 'LANG=C', 'qemu-img',
                          'convert', 'x', 'y'), args)
        self.assertNotIn('prlimit', kwargs)
