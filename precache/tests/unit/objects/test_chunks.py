"""Tests of content-defined chunking and the chunk index format."""

import io

import fastcdc
import fixtures
import zstandard

from precache.objects import chunks
from precache.tests import base
from precache.tests.fixtures import image_pairs


class TestChunking(base.TestCase):

    def setUp(self):
        super().setUp()
        # Small pieces, so that chunks straddle many piece ends.
        self.useFixture(fixtures.MockPatchObject(chunks, 'READ_SIZE',
                                                 100000))
        self.v1, self.v2 = image_pairs.synthetic_pair(3 * 1024 * 1024)

    def test_streaming_cuts_like_the_whole_file(self):
        streamed = [(offset, len(data)) for offset, data in
                    chunks.iter_chunks(io.BytesIO(self.v1), 16384)]
        whole = [(c.offset, c.length) for c in fastcdc.fastcdc(
            self.v1, 4096, 16384, 131072)]
        self.assertEqual(whole, streamed)
        self.assertEqual(len(self.v1), sum(n for _o, n in streamed))

    def test_read_size_changes_no_boundary(self):
        def cut(read_size):
            return [(offset, len(data)) for offset, data in
                    chunks.iter_chunks(io.BytesIO(self.v1), 4096,
                                       read_size)]

        small = chunks.small_read_size(4096)
        self.assertEqual(1024 * 1024, small)
        self.assertEqual(2 * 8 * 131072, chunks.small_read_size(131072))
        self.assertEqual(cut(None), cut(small))
        self.assertEqual(cut(None), cut(3 * 1024 * 1024 + 1))

    def test_boundaries_survive_an_insertion(self):
        v1, v2 = image_pairs.synthetic_pair(3 * 1024 * 1024,
                                            changed_blocks=0)
        old = {name for _o, _n, name in self._entries(v1)}
        new = self._entries(v2)
        shared = sum(length for _o, length, name in new if name in old)
        # Only the chunks around the insertion differ (a few of 16 KiB).
        self.assertGreater(shared, len(v2) - 200 * 1024)

    def test_index_round_trip(self):
        index = chunks.Index(16384, self._entries(self.v1))
        decoded = chunks.Index.decode(index.encode())
        self.assertEqual(index.entries, decoded.entries)
        self.assertEqual(16384, decoded.average)
        self.assertEqual(len(self.v1), decoded.size)
        # 32-byte digests dominate: a few bytes more per chunk at most.
        self.assertLess(len(index.encode()), 40 * len(index.entries))

    def test_index_of_file(self):
        path = self.tempdir + '/v1'
        with open(path, 'wb') as f:
            f.write(self.v1)
        self.assertEqual(self._entries(self.v1),
                         chunks.Index.of_file(path, 16384).entries)

    def test_empty_file_has_no_chunks(self):
        self.assertEqual([], list(chunks.iter_chunks(io.BytesIO(), 16384)))

    def test_decode_refuses_other_bytes(self):
        self.assertRaises(chunks.InvalidIndex, chunks.Index.decode, b'junk')
        blob = chunks.Index(16384, self._entries(self.v1)).encode()
        raw = zstandard.ZstdDecompressor().decompress(blob)
        truncated = zstandard.ZstdCompressor().compress(raw[:-5])
        self.assertRaises(chunks.InvalidIndex, chunks.Index.decode,
                          truncated)

    def test_average_out_of_range(self):
        self.assertRaises(ValueError, chunks.limits, 100)

    @staticmethod
    def _entries(data):
        return [(offset, len(chunk), chunks.digest(chunk)) for offset, chunk
                in chunks.iter_chunks(io.BytesIO(data), 16384)]
