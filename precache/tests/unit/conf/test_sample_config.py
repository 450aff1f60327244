"""The committed sample configuration must match the options in code."""

import os
import sys

from oslo_config import generator

from precache.tests import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))
GENERATOR_CONF = os.path.join(ROOT, 'etc', 'oslo-config-generator',
                              'precache.conf')
SAMPLE = os.path.join(ROOT, 'etc', 'precache.conf.sample')


class SampleConfigTest(base.TestCase):

    def test_sample_is_current(self):
        output = os.path.join(self.tempdir, 'precache.conf.sample')
        generator.main(['--config-file', GENERATOR_CONF,
                        '--output-file', output])
        with open(output) as f:
            generated = f.read()
        with open(SAMPLE) as f:
            committed = f.read()
        self.assertEqual(
            committed, generated,
            'etc/precache.conf.sample is out of date: run '
            '"tox -e genconfig" and commit the result (%s)' % sys.executable)
