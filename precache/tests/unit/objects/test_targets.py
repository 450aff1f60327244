"""Which requests are meant for which host."""

from precache.agent import targeting
from precache.tests import base


class TargetingTest(base.TestCase):

    def test_no_targets_means_everyone(self):
        self.assertTrue(targeting.is_targeted(None, 'cmp1', []))
        self.assertTrue(targeting.is_targeted({}, 'cmp1', []))
        self.assertTrue(targeting.is_targeted({'hosts': []}, 'cmp1', []))

    def test_host_globs(self):
        targets = {'hosts': ['cmp-a-*', 'special']}
        self.assertTrue(targeting.is_targeted(targets, 'cmp-a-17', []))
        self.assertTrue(targeting.is_targeted(targets, 'special', []))
        self.assertFalse(targeting.is_targeted(targets, 'cmp-b-1', []))

    def test_labels(self):
        targets = {'labels': ['az1', 'gpu']}
        self.assertTrue(targeting.is_targeted(targets, 'x', ['gpu']))
        self.assertFalse(targeting.is_targeted(targets, 'x', ['az2']))
        self.assertFalse(targeting.is_targeted(targets, 'x', []))
