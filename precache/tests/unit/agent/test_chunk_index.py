"""The agent's chunk index: what it records and when it forgets."""

import os

from precache.agent import chunk_index
from precache.objects import chunks
from precache.tests import base
from precache.tests.fixtures import image_pairs

AVERAGE = 4096


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return path


class FakeStore(object):
    """The two parts of a store the indexer uses: a directory, a list."""

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir

    def inventory(self):
        return [{'name': name} for name in sorted(os.listdir(self.cache_dir))]


class ChunkIndexTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.store_dir = os.path.join(self.tempdir, 'store')
        os.mkdir(self.store_dir)
        self.index = chunk_index.ChunkIndex(
            os.path.join(self.tempdir, 'state'), AVERAGE)
        self.addCleanup(self.index.close)
        self.data = image_pairs.synthetic_image(512 * 1024)
        self.path = write(os.path.join(self.store_dir, 'a'), self.data)

    def cut(self, data):
        return [(offset, bytes(piece)) for offset, piece in
                chunks.iter_chunks(_BytesFile(data), AVERAGE)]


class _BytesFile(object):
    def __init__(self, data):
        self._data = data
        self._at = 0

    def read(self, size):
        piece = self._data[self._at:self._at + size]
        self._at += len(piece)
        return piece


class TestChunkIndex(ChunkIndexTestCase):

    def test_every_chunk_is_found_where_it_lies(self):
        pieces = self.cut(self.data)
        self.assertEqual(len(pieces), self.index.add(self.path))
        for offset, piece in pieces:
            self.assertIn((self.path, offset),
                          self.index.find(chunks.digest(piece), len(piece)))

    def test_pieces_tile_a_range_of_chunks_only(self):
        pieces = self.cut(self.data)
        self.index.add(self.path)
        start = pieces[2][0]
        end = pieces[5][0]
        tiles = self.index.pieces(self.path, start, end - start)
        self.assertEqual([(o, len(p), chunk_index.key(chunks.digest(p)))
                          for o, p in pieces[2:5]], tiles)
        self.assertIsNone(self.index.pieces(self.path, start + 1,
                                            end - start - 1))
        self.assertIsNone(self.index.pieces(self.path + 'x', start,
                                            end - start))

    def test_kept_out_of_the_store(self):
        self.index.add(self.path)
        self.assertEqual(['a'], os.listdir(self.store_dir))
        self.assertTrue(os.path.exists(self.index.path))

    def test_touch_keeps_it_a_new_size_or_inode_does_not(self):
        self.index.add(self.path)
        os.utime(self.path, (1, 1))
        self.assertTrue(self.index.is_current(self.path, os.stat(self.path)))
        with open(self.path, 'ab') as f:
            f.write(b'more')
        self.assertFalse(self.index.is_current(self.path,
                                               os.stat(self.path)))
        offset, piece = self.cut(self.data)[0]
        self.assertEqual([], self.index.find(chunks.digest(piece),
                                             len(piece)))
        # What the file held stays known until it is indexed again.
        self.assertEqual(1, len(self.index.pieces(self.path, 0, len(piece))))

    def test_other_average_is_another_index(self):
        self.index.add(self.path)
        other = chunk_index.ChunkIndex(os.path.dirname(self.index.path),
                                       AVERAGE * 2)
        self.addCleanup(other.close)
        self.assertFalse(other.is_current(self.path, os.stat(self.path)))
        offset, piece = self.cut(self.data)[0]
        self.assertEqual([], other.find(chunks.digest(piece), len(piece)))

    def test_vanished_file_is_forgotten(self):
        self.index.add(self.path)
        os.unlink(self.path)
        self.assertIsNone(self.index.add(self.path))
        self.assertEqual({}, self.index.files())

    def test_change_while_indexing_is_refused(self):
        grown = []

        def grow():
            if not grown:
                grown.append(os.path.getsize(self.path))
                with open(self.path, 'ab') as f:
                    f.write(b'x')

        self.assertRaises(chunk_index.Changed, self.index.add, self.path,
                          pause=grow)
        self.assertEqual({}, self.index.files())

    def test_impossible_average_refused(self):
        self.assertRaises(ValueError, chunk_index.ChunkIndex,
                          self.tempdir, 100)
