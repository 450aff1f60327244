"""The agent's chunk indexer: when it indexes, follows, pauses, stops."""

import logging
import os
import threading
import time

import fixtures

from precache.agent import chunk_index
from precache.agent import chunk_indexer
from precache.common import exception
from precache.objects import chunks
from precache.tests import base
from precache.tests.unit.agent.test_chunk_index import _BytesFile
from precache.tests.unit.agent.test_chunk_index import AVERAGE
from precache.tests.unit.agent.test_chunk_index import ChunkIndexTestCase
from precache.tests.unit.agent.test_chunk_index import FakeStore
from precache.tests.unit.agent.test_chunk_index import write


def eventually(predicate, timeout=10):
    """Whether ``predicate()`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def log_of(test):
    """Capture the log, levels named: ``log_of(self).output``."""
    return test.useFixture(fixtures.FakeLogger(
        level=logging.INFO, format='%(levelname)s %(message)s'))


class TestFollowingTheDeltas(ChunkIndexTestCase):
    """Without ``average_chunk_size`` the index cuts as the deltas say."""

    def following(self):
        index = chunk_index.ChunkIndex(os.path.dirname(self.index.path))
        self.addCleanup(index.close)
        return index

    def indexer(self, index, busy=lambda: False):
        indexer = chunk_indexer.Indexer(index, FakeStore(self.store_dir),
                                        busy)
        self.addCleanup(indexer.stop)
        indexer.start()
        self.assertTrue(indexer.wait_idle(10))
        return indexer

    def test_default_until_a_delta_names_an_average(self):
        index = self.following()
        self.assertEqual(chunk_index.DEFAULT_AVERAGE, index.average)
        self.assertIsNone(index.named_average())

    def test_switches_once_and_every_instance_sees_it(self):
        log = log_of(self)
        indexer = self.indexer(self.following())
        indexer.follow(8192)
        indexer.follow(8192)
        self.assertTrue(indexer.wait_idle(10))
        # Kept in the database: the delta source's instance, and the
        # agent after a restart, cut and look up alike.
        self.assertEqual(8192, self.following().average)
        self.assertEqual(1, log.output.count(
            'INFO Chunk index: deltas are now cut with an average chunk '
            'size of 8192 bytes (was 16384)'))

    def test_entries_of_the_old_average_are_left_out(self):
        index = self.following()
        index.add(self.path)
        offset, piece = [(o, bytes(p)) for o, p in chunks.iter_chunks(
            _BytesFile(self.data), chunk_index.DEFAULT_AVERAGE)][0]
        self.assertEqual([(self.path, offset)],
                         index.find(chunks.digest(piece), len(piece)))
        index.set_named_average(AVERAGE)
        self.assertFalse(index.is_current(self.path, os.stat(self.path)))
        self.assertEqual([], index.find(chunks.digest(piece), len(piece)))

    def test_switch_while_paused_in_a_file_is_prompt(self):
        busy = threading.Event()
        busy.set()
        index = self.following()
        indexer = chunk_indexer.Indexer(index, FakeStore(self.store_dir),
                                        busy.is_set)
        self.addCleanup(indexer.stop)
        indexer.start()  # Paused in the store's file, holding sqlite.
        self.assertFalse(indexer.wait_idle(2 * chunk_indexer.PAUSE_POLL))
        indexer.follow(AVERAGE)  # From a download's thread: never waits.
        # Switched while the download runs; the file waits for it.
        self.assertTrue(eventually(lambda: index.average == AVERAGE))
        self.assertEqual({}, index.files())
        busy.clear()
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual({self.path: AVERAGE},
                         {path: f[3] for path, f in index.files().items()})

    def test_a_set_average_is_kept_and_a_difference_warned_once(self):
        log = log_of(self)
        indexer = self.indexer(self.index)
        for average in (AVERAGE, 8192, 8192, 32768):
            indexer.follow(average)
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual(AVERAGE, self.index.average)
        warnings = [line for line in log.output.splitlines()
                    if line.startswith('WARNING')]
        self.assertEqual([
            'WARNING Chunk index: deltas are cut with an average chunk size '
            'of %d bytes, the index with %d ([chunk_index] '
            'average_chunk_size): it finds none of their chunks. Unset '
            '[chunk_index] average_chunk_size to follow the deltas, or set '
            'it to %d.' % (average, AVERAGE, average)
            for average in (8192, 32768)], warnings)
        self.assertNotIn('deltas are now cut', log.output)
        # What the deltas name is kept: unset, the option follows them.
        self.assertEqual(32768, self.following().average)


class TestIndexer(ChunkIndexTestCase):

    def indexer(self, busy=lambda: False):
        indexer = chunk_indexer.Indexer(self.index,
                                        FakeStore(self.store_dir), busy)
        self.addCleanup(indexer.stop)
        return indexer

    def test_indexes_the_store_at_start_then_what_lands(self):
        indexer = self.indexer()
        indexer.start()
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual([self.path], list(self.index.files()))
        landed = write(os.path.join(self.store_dir, 'b'), self.data[::-1])
        indexer.landed(landed)
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual({self.path, landed}, set(self.index.files()))

    def test_rescan_forgets_vanished_and_reindexes_changed_files(self):
        other = write(os.path.join(self.store_dir, 'b'), self.data[:1000])
        indexer = self.indexer()
        indexer.start()
        self.assertTrue(indexer.wait_idle(10))
        os.unlink(other)
        write(self.path, self.data[:4096])
        indexer.rescan()
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual([self.path], list(self.index.files()))
        self.assertTrue(self.index.is_current(self.path, os.stat(self.path)))

    def test_waits_while_downloads_run(self):
        busy = threading.Event()
        busy.set()
        indexer = self.indexer(busy=busy.is_set)
        indexer.start()
        self.assertFalse(indexer.wait_idle(2 * chunk_indexer.PAUSE_POLL))
        self.assertEqual({}, self.index.files())
        busy.clear()
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual([self.path], list(self.index.files()))

    def test_a_new_average_indexes_the_store_again(self):
        self.index = chunk_index.ChunkIndex(
            os.path.join(self.tempdir, 'following'))
        self.addCleanup(self.index.close)
        other = write(os.path.join(self.store_dir, 'b'), self.data[::-1])
        indexer = self.indexer()
        indexer.start()
        self.assertTrue(indexer.wait_idle(10))
        indexer.follow(None)  # A delta of meta 1.4: nothing changes.
        indexer.follow(chunk_index.DEFAULT_AVERAGE)
        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual({chunk_index.DEFAULT_AVERAGE},
                         {f[3] for f in self.index.files().values()})

        indexer.follow(AVERAGE)

        self.assertTrue(indexer.wait_idle(10))
        self.assertEqual({self.path: AVERAGE, other: AVERAGE},
                         {path: f[3] for path, f in
                          self.index.files().items()})
        for offset, piece in self.cut(self.data):
            self.assertIn((self.path, offset),
                          self.index.find(chunks.digest(piece), len(piece)))

    def test_stop_abandons_the_file_being_indexed(self):
        indexer = self.indexer(busy=lambda: True)
        indexer.start()
        indexer.stop()
        self.assertEqual({}, self.index.files())


class TestFromConf(base.TestCase):

    def test_off_by_default(self):
        self.assertIsNone(chunk_indexer.Indexer.from_conf(self.conf, None))

    def test_on_under_the_state_path(self):
        self.flags(state_path=self.tempdir)
        self.flags(group='chunk_index', enabled=True)
        indexer = chunk_indexer.Indexer.from_conf(self.conf, None)
        self.addCleanup(indexer.index.close)
        self.assertEqual(os.path.join(self.tempdir, 'chunk-index',
                                      chunk_index.DB_NAME),
                         indexer.index.path)

    def test_unusable_directory_is_a_configuration_error(self):
        path = write(os.path.join(self.tempdir, 'file'), b'')
        self.flags(group='chunk_index', enabled=True, directory=path)
        self.assertRaises(exception.ConfigurationError,
                          chunk_indexer.Indexer.from_conf, self.conf, None)
