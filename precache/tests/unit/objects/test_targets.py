"""Which requests are meant for which host."""

from precache.objects import targets as targets_mod
from precache.tests import base


class TargetingTest(base.TestCase):

    def test_no_targets_means_everyone(self):
        self.assertTrue(targets_mod.is_targeted(None, 'cmp1', []))
        self.assertTrue(targets_mod.is_targeted({}, 'cmp1', []))
        self.assertTrue(targets_mod.is_targeted({'hosts': []}, 'cmp1', []))

    def test_host_globs(self):
        targets = {'hosts': ['cmp-a-*', 'special']}
        self.assertTrue(targets_mod.is_targeted(targets, 'cmp-a-17', []))
        self.assertTrue(targets_mod.is_targeted(targets, 'special', []))
        self.assertFalse(targets_mod.is_targeted(targets, 'cmp-b-1', []))

    def test_labels(self):
        targets = {'labels': ['az1', 'gpu']}
        self.assertTrue(targets_mod.is_targeted(targets, 'x', ['gpu']))
        self.assertFalse(targets_mod.is_targeted(targets, 'x', ['az2']))
        self.assertFalse(targets_mod.is_targeted(targets, 'x', []))


class TargetMatcherTest(base.TestCase):

    def test_no_targets_is_every_host(self):
        for targets in (None, {}, {'hosts': [], 'labels': []}):
            matcher = targets_mod.TargetMatcher(targets)
            self.assertTrue(matcher.matches('anything', []))

    def test_host_globs(self):
        matcher = targets_mod.TargetMatcher(
            {'hosts': ['cmp-a-*', 'ctl-1', 'gpu-[12]']})
        self.assertTrue(matcher.matches('cmp-a-017', []))
        self.assertTrue(matcher.matches('ctl-1', []))
        self.assertTrue(matcher.matches('gpu-2', []))
        self.assertFalse(matcher.matches('gpu-3', []))
        self.assertFalse(matcher.matches('ctl-10', []))
        self.assertFalse(matcher.matches('xcmp-a-1', []))

    def test_labels(self):
        matcher = targets_mod.TargetMatcher({'labels': ['az1', 'gpu']})
        self.assertTrue(matcher.matches('h', ['az2', 'gpu']))
        self.assertFalse(matcher.matches('h', ['az2']))
        self.assertFalse(matcher.matches('h', None))

    def test_hosts_or_labels(self):
        matcher = targets_mod.TargetMatcher({'hosts': ['a*'],
                                            'labels': ['gpu']})
        self.assertTrue(matcher.matches('a1', []))
        self.assertTrue(matcher.matches('b1', ['gpu']))
        self.assertFalse(matcher.matches('b1', ['az1']))
