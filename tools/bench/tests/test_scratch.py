"""The work directory of a benchmark run (tools/bench/scratch.py)."""

import os

import fixtures

from precache.tests import base
import scratch


class WorkDirTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.parent = self.useFixture(fixtures.TempDir()).path

    def test_a_fresh_directory_is_removed_with_what_it_holds(self):
        with scratch.work_dir(parent=self.parent) as path:
            os.makedirs(os.path.join(path, 'www', 'images'))
            with open(os.path.join(path, 'www', 'images', 'a'), 'wb') as f:
                f.write(b'x' * 4096)
        self.assertFalse(os.path.exists(path))
        self.assertEqual([], os.listdir(self.parent))

    def test_a_fresh_directory_is_removed_when_the_run_fails(self):
        def failing_run():
            with scratch.work_dir(parent=self.parent) as path:
                open(os.path.join(path, 'image'), 'w').close()
                raise KeyboardInterrupt('signal 15')

        self.assertRaises(KeyboardInterrupt, failing_run)
        self.assertEqual([], os.listdir(self.parent))

    def test_keep_keeps_a_fresh_directory(self):
        self.useFixture(fixtures.MonkeyPatch('builtins.print',
                                             lambda *a: None))
        with scratch.work_dir(parent=self.parent, keep=True) as path:
            pass
        self.assertTrue(os.path.isdir(path))

    def test_a_given_directory_is_made_and_kept(self):
        given = os.path.join(self.parent, 'mine')
        with scratch.work_dir(given) as path:
            self.assertEqual(given, path)
            open(os.path.join(path, 'image'), 'w').close()
        self.assertEqual(['image'], os.listdir(given))
