"""The daemons tune glibc's malloc unless the operator did."""

import ctypes
import os
import subprocess
import sys
import textwrap

from precache.common import malloc_tuning
from precache.tests import base

VARIABLES = ('MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_',
             'MALLOC_TRIM_THRESHOLD_')

# A child that tunes (or only caps the arenas), then passes 1 MiB chunks
# through threads the way a download does (read thread, decompression,
# hash thread), and prints the page faults the chunks took.
CHURN = textwrap.dedent('''
    import queue, resource, sys, threading
    from precache.common import malloc_tuning
    if sys.argv[1] == 'tune':
        malloc_tuning.tune()
    else:
        malloc_tuning.limit_arenas()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    read, hashed = queue.Queue(4), queue.Queue(4)
    def reader():
        for _ in range(400):
            read.put(bytes(bytearray(1 << 20)))
        read.put(None)
    def hasher():
        while hashed.get() is not None:
            pass
    threads = [threading.Thread(target=reader),
               threading.Thread(target=hasher)]
    for thread in threads:
        thread.start()
    for chunk in iter(read.get, None):
        hashed.put(bytes(bytearray(chunk[:1 << 19])) + bytes(1 << 19))
    hashed.put(None)
    for thread in threads:
        thread.join()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
''')


def glibc():
    try:
        ctypes.CDLL('libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    return True


class TuneTest(base.TestCase):

    def run_child(self, code, *args, **variables):
        """Return the output lines of ``code`` in a fresh process.

        Of :data:`VARIABLES`, only ``variables`` are set there.
        """
        env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
        env.update(variables)
        out = subprocess.run([sys.executable, '-c', code] + list(args),
                             env=env, capture_output=True, text=True,
                             check=True)
        return out.stdout.split('\n')

    def tune_in_child(self, **variables):
        code = ('from precache.common import malloc_tuning\n'
                'print(malloc_tuning.tune())')
        return self.run_child(code, **variables)[0]

    def test_sets_everything_on_glibc(self):
        if not glibc():
            self.skipTest('not glibc')
        self.assertEqual("{'arenas': True, 'large_buffers': True}",
                         self.tune_in_child())

    def test_operator_settings_win(self):
        self.assertEqual(
            "{'arenas': False, 'large_buffers': False}",
            self.tune_in_child(MALLOC_ARENA_MAX='4',
                               MALLOC_TRIM_THRESHOLD_='1048576'))

    def test_freed_download_chunks_are_reused(self):
        if not glibc():
            self.skipTest('not glibc')
        untuned = int(self.run_child(CHURN, 'plain')[0])
        tuned = int(self.run_child(CHURN, 'tune')[0])
        # A chunk of 1 MiB whose memory went back to the kernel is 256
        # pages faulted in again (1,200 chunks here); reused memory is
        # not.
        self.assertLess(tuned * 5, untuned)
        self.assertLess(tuned, 1200 * 256 // 20)

    def test_no_mallopt_is_not_an_error(self):
        self.patch(malloc_tuning.libc.ctypes, 'CDLL', self._no_libc)
        self.patch(malloc_tuning.os, 'environ', {})
        self.assertEqual({'arenas': False, 'large_buffers': False},
                         malloc_tuning.tune())

    @staticmethod
    def _no_libc(name, **kwargs):
        raise OSError('%s: cannot open shared object file' % name)
