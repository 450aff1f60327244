"""glibc malloc settings of the daemons.

Why this module exists: two of glibc's defaults cost the daemons memory
or CPU, and no maintained package sets them. Both are set through
``mallopt(3)`` as their environment variables would be, unless the
operator set that variable (glibc already applied it: the operator's
choice wins). Elsewhere than glibc (musl has no ``mallopt``) nothing is
set.

**Arenas** (``M_ARENA_MAX``, ``MALLOC_ARENA_MAX``): glibc gives threads
that allocate concurrently arenas of their own, up to 8 per core, and an
arena keeps the memory freed in it for its next allocations. A daemon's
worker allocates from many threads (the RPC server's pool, heartbeats,
downloads, the service's pipeline), so its resident memory grew with each
arena it filled: in the soak's broker-restart runs the service's worker
went from 143 to 221 MiB in four minutes, and stayed within 119-124 MiB
with two arenas.

**Large buffers** (``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``,
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``): a download
allocates a chunk of about 1 MiB per step of each stage (read,
decompressed bytes) and frees it a moment later. With glibc's adaptive
defaults the freed memory at the top of an arena passes the trim
threshold (twice the largest chunk freed, 2 MiB) and goes back to the
kernel, to be faulted in again, zeroed, by the next chunks: 170,000 page
faults and 0.7 s of system time for a 1 GiB image, against 16,000 and
0.4 s with the settings below. They keep up to :data:`TRIM_THRESHOLD` of
free memory per arena (a few MiB in a daemon with :data:`ARENAS` arenas)
and allocate chunks below :data:`MMAP_THRESHOLD` from the arenas.
"""

import ctypes
import os

from precache.common import libc

#: Arenas a daemon may use; glibc's default is 8 per core.
ARENAS = 2
#: Allocations from this size on get pages of their own (glibc: 128 KiB,
#: rising to the largest such chunk freed).
MMAP_THRESHOLD = 4 * 1024 * 1024
#: Free memory at the top of an arena kept rather than given back (glibc:
#: 128 KiB, rising to twice the mmap threshold).
TRIM_THRESHOLD = 8 * 1024 * 1024

# The parameters of glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _set(parameter, value, variable):
    """``mallopt(parameter, value)`` unless ``variable`` is set."""
    if os.environ.get(variable):
        return False
    mallopt = libc.function('mallopt', (ctypes.c_int, ctypes.c_int))
    if mallopt is None:
        return False
    return mallopt(parameter, value) == 1


def limit_arenas(arenas=ARENAS):
    """Cap the malloc arenas of this process and of the ones it forks.

    Call it before the process starts threads.

    :returns: True when the cap was set.
    """
    return _set(_M_ARENA_MAX, arenas, 'MALLOC_ARENA_MAX')


def keep_large_buffers(mmap_threshold=MMAP_THRESHOLD,
                       trim_threshold=TRIM_THRESHOLD):
    """Reuse freed download chunks' memory rather than fault in new pages.

    :returns: True when both thresholds were set.
    """
    mmap_set = _set(_M_MMAP_THRESHOLD, mmap_threshold,
                    'MALLOC_MMAP_THRESHOLD_')
    trim_set = _set(_M_TRIM_THRESHOLD, trim_threshold,
                    'MALLOC_TRIM_THRESHOLD_')
    return mmap_set and trim_set


def tune():
    """Apply every setting of this module; call it before threads start.

    :returns: ``{setting: whether it was set}``.
    """
    return {'arenas': limit_arenas(), 'large_buffers': keep_large_buffers()}
