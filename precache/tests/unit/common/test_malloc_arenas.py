"""The daemons cap glibc's malloc arenas unless the operator did."""

import ctypes
import os
import subprocess
import sys
import textwrap

from precache.common import malloc_arenas
from precache.tests import base


class LimitTest(base.TestCase):

    def run_child(self, env_value=None):
        """``limit()`` in a fresh process; its return value."""
        env = {k: v for k, v in os.environ.items()
               if k != 'MALLOC_ARENA_MAX'}
        if env_value is not None:
            env['MALLOC_ARENA_MAX'] = env_value
        code = textwrap.dedent('''
            from precache.common import malloc_arenas
            print(malloc_arenas.limit())
        ''')
        out = subprocess.run([sys.executable, '-c', code], env=env,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def test_sets_the_cap_on_glibc(self):
        try:
            ctypes.CDLL('libc.so.6').mallopt
        except (OSError, AttributeError):
            self.skipTest('not glibc')
        self.assertEqual('True', self.run_child())

    def test_operator_setting_wins(self):
        self.assertEqual('False', self.run_child('4'))

    def test_no_mallopt_is_not_an_error(self):
        self.patch(malloc_arenas.ctypes, 'CDLL', self._no_libc)
        self.patch(malloc_arenas.os, 'environ', {})
        self.assertFalse(malloc_arenas.limit())

    @staticmethod
    def _no_libc(name, **kwargs):
        raise OSError('%s: cannot open shared object file' % name)
