"""Rounds above the CPU ceiling are invalid (tools/bench/cpu_ceiling.py)."""

import cpu_ceiling
from precache.tests import base


class CheckTest(base.TestCase):

    def test_a_round_below_the_ceiling_is_valid(self):
        result = cpu_ceiling.check({'cpu_average': 69.9}, 70.0)
        self.assertTrue(result['valid'])
        self.assertEqual(70.0, result['cpu_ceiling'])
        self.assertNotIn('invalid_reason', result)
        self.assertEqual('', cpu_ceiling.label(result))

    def test_a_round_above_the_ceiling_is_invalid_and_says_why(self):
        result = cpu_ceiling.check({'cpu_average': 92.4}, 70.0)
        self.assertFalse(result['valid'])
        self.assertIn('92 %', result['invalid_reason'])
        self.assertIn('70 %', result['invalid_reason'])
        self.assertEqual('INVALID', cpu_ceiling.label(result))

    def test_no_ceiling_keeps_every_round(self):
        result = cpu_ceiling.check({'cpu_average': 100.0}, None)
        self.assertTrue(result['valid'])
        self.assertIsNone(result['cpu_ceiling'])

    def test_parse(self):
        self.assertEqual(70.0, cpu_ceiling.parse('70'))
        self.assertIsNone(cpu_ceiling.parse('none'))
        self.assertRaises(ValueError, cpu_ceiling.parse, '0')
        self.assertRaises(ValueError, cpu_ceiling.parse, '101')
        self.assertRaises(ValueError, cpu_ceiling.parse, 'high')
