"""Durations and sizes of the ``precache`` CLI."""

import argparse

from precache.cli import units
from precache.tests import base


class DurationTest(base.TestCase):

    def test_accepted_forms(self):
        for text, seconds in (('3600', 3600), ('45s', 45), ('30m', 1800),
                              ('12h', 43200), ('7d', 604800),
                              ('2w', 1209600), (' 12H ', 43200)):
            self.assertEqual(seconds, units.parse_duration(text), text)

    def test_refused_forms_name_the_accepted_ones(self):
        for text in ('', '0', '0h', '-5', '1.5h', '3x', '10 m', 'h', '1h30m'):
            exc = self.assertRaises(argparse.ArgumentTypeError,
                                    units.parse_duration, text)
            self.assertIn('e.g. 30m, 12h, 7d', str(exc))

    def test_positive_seconds(self):
        self.assertEqual(2.5, units.positive_seconds('2.5'))
        for text in ('0', '-1', 'soon', 'nan'):
            self.assertRaises(argparse.ArgumentTypeError,
                              units.positive_seconds, text)


class FormatTest(base.TestCase):

    def test_bytes(self):
        self.assertEqual('', units.format_bytes(None))
        self.assertEqual('0 B', units.format_bytes(0))
        self.assertEqual('1023 B', units.format_bytes(1023))
        self.assertEqual('1.0 KiB', units.format_bytes(1024))
        self.assertEqual('1.5 GiB', units.format_bytes(3 * 1024 ** 3 // 2))
        self.assertEqual('2048.0 PiB', units.format_bytes(2 * 1024 ** 6))

    def test_duration(self):
        self.assertEqual('', units.format_duration(None))
        self.assertEqual('12s', units.format_duration(12.4))
        self.assertEqual('4m05s', units.format_duration(245))
        self.assertEqual('26h00m', units.format_duration(26 * 3600))
