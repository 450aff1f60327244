"""Which agent a fault hits (rig.py)."""

import rig

from precache.tests import base


class FaultTargetTest(base.TestCase):

    def test_faults_go_round_all_agents_but_the_control(self):
        three = rig.Rig('/nowhere', '/nowhere/images', 3)
        self.assertEqual(['soak-1', 'soak-2', 'soak-1', 'soak-2'],
                         [three.next_fault_target() for _ in range(4)])

    def test_a_single_agent_is_its_own_target(self):
        one = rig.Rig('/nowhere', '/nowhere/images', 1)
        self.assertEqual(['soak-1', 'soak-1'],
                         [one.next_fault_target() for _ in range(2)])
