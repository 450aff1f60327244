"""Assembling an image from a base and a delta, with the chunk index."""

import hashlib
import io
import os

from precache.agent import assembly
from precache.agent import chunk_index
from precache.agent.sources import delta as delta_source
from precache.common import exception
from precache.objects import chunks
from precache.objects import delta as delta_format
from precache.objects import image as image_mod
from precache.tests import base
from precache.tests.fixtures import image_pairs

AVERAGE = 4096
KiB = 1024


class TestAssemblerWithIndex(base.TestCase):

    def setUp(self):
        super().setUp()
        self.v1, self.v2 = image_pairs.synthetic_pair(
            768 * KiB, changed_blocks=8, inserted=3000)
        self.store = os.path.join(self.tempdir, 'store')
        os.mkdir(self.store)
        self.base = self.write('v1', self.v1)
        out = io.BytesIO()
        with open(self.write('v2.src', self.v2), 'rb') as f:
            delta_format.write_delta(
                f, chunks.Index.of_file(self.base, AVERAGE), out)
        self.delta = out.getvalue()
        self.index = chunk_index.ChunkIndex(
            os.path.join(self.tempdir, 'state'), AVERAGE)
        self.addCleanup(self.index.close)
        self.image = image_mod.ImageRecord(
            id='v2', disk_format='raw', size=len(self.v2),
            os_hash_algo='sha512',
            os_hash_value=hashlib.sha512(self.v2).hexdigest())

    def write(self, name, data):
        path = os.path.join(self.store, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def copied_offset(self, after):
        """An offset of the base that the delta copies, beyond ``after``."""
        for record in delta_format.Parser().feed(self.delta):
            if record[0] == delta_format.COPY and record[1] >= after:
                return record[1] + record[2] // 2
        self.fail('the delta copies nothing beyond %d' % after)

    def corrupt(self, after=300 * KiB):
        with open(self.base, 'r+b') as f:
            f.seek(self.copied_offset(after))
            f.write(b'\xde\xad\xbe\xef')

    def assemble(self, index):
        sink = io.BytesIO()
        assembler = assembly.Assembler(self.image, 'v1', self.base, sink,
                                       index)
        for at in range(0, len(self.delta), 10000):
            assembler.write(self.delta[at:at + 10000])
        assembler.close()
        return assembler, sink.getvalue()

    def test_unchanged_base_needs_no_index(self):
        self.index.add(self.base)
        assembler, image = self.assemble(self.index)
        self.assertEqual(self.v2, image)
        self.assertEqual(0, assembler.relocated)
        self.assertGreater(assembler.copied, len(self.v2) // 2)

    def test_changed_chunk_taken_from_another_indexed_image(self):
        # Another image holds part of v1 (not at the same offsets).
        other = self.write('other', b'\x01' * 777 + self.v1[200 * KiB:])
        self.index.add(self.base)
        self.index.add(other)
        self.corrupt()
        assembler, image = self.assemble(self.index)
        self.assertEqual(self.v2, image)
        self.assertGreater(assembler.relocated, 0)
        self.assertLess(assembler.relocated, 64 * KiB)

    def test_changed_chunk_found_nowhere_is_unusable(self):
        self.index.add(self.base)
        self.corrupt()
        exc = self.assertRaises(exception.BaseUnusable, self.assemble,
                                self.index)
        self.assertIn('differ from the base', str(exc))

    def test_wrong_bytes_elsewhere_are_not_taken(self):
        # The other file was indexed, then rewritten in place (same size
        # and inode): the index still points at it, its bytes no longer
        # match.
        other = self.write('other', self.v1)
        self.index.add(self.base)
        self.index.add(other)
        with open(other, 'r+b') as f:
            f.write(bytes(len(self.v1)))
        self.corrupt()
        self.assertRaises(exception.BaseUnusable, self.assemble, self.index)

    def test_without_index_a_changed_base_is_unusable(self):
        self.write('other', self.v1)
        self.corrupt()
        self.assertRaises(exception.BaseUnusable, self.assemble, None)

    def test_truncated_base_completed_from_another_image(self):
        other = self.write('other', self.v1)
        self.index.add(self.base)
        self.index.add(other)
        with open(self.base, 'r+b') as f:
            f.truncate(500 * KiB)
        assembler, image = self.assemble(self.index)
        self.assertEqual(self.v2, image)
        self.assertGreater(assembler.relocated, 200 * KiB)

    def test_broken_index_is_unusable_not_fatal(self):
        self.index.add(self.base)
        self.corrupt()
        os.unlink(self.index.path)
        os.mkdir(self.index.path)  # sqlite cannot open it any more
        self.index.close()
        exc = self.assertRaises(exception.BaseUnusable, self.assemble,
                                self.index)
        self.assertIn('the chunk index failed', str(exc))


class TestDeltaSourceIndex(base.TestCase):

    def source(self, **options):
        self.flags(group='chunk_index', **options)
        source = delta_source.DeltaSource(self.conf)
        self.addCleanup(source.close)
        return source

    def test_off_by_default(self):
        self.assertIsNone(self.source().index)

    def test_opened_when_enabled(self):
        source = self.source(enabled=True, directory=self.tempdir)
        self.addCleanup(source.index.close)
        self.assertEqual(os.path.join(self.tempdir, chunk_index.DB_NAME),
                         source.index.path)

    def test_unusable_directory_means_no_index(self):
        path = os.path.join(self.tempdir, 'file')
        open(path, 'w').close()
        self.assertIsNone(self.source(enabled=True, directory=path).index)
