"""Cap glibc's malloc arenas in the daemons.

Why this module exists: glibc gives threads that allocate concurrently
arenas of their own, up to 8 per core, and an arena keeps the memory
freed in it for its next allocations. A daemon's worker allocates from
many threads (the RPC server's pool, heartbeats, downloads, the service's
pipeline), so its resident memory grew with each arena it filled: in the
soak's broker-restart runs the service's worker went from 143 to 221 MiB
in four minutes, and stayed within 119-124 MiB with two arenas.

:func:`limit` sets ``M_ARENA_MAX`` through ``mallopt(3)``, as the
``MALLOC_ARENA_MAX`` environment variable would, unless that variable is
set (glibc already applied it: the operator's choice wins). Elsewhere than
glibc (musl has no ``mallopt``) it does nothing.
"""

import ctypes
import os

from precache.common import libc

#: Arenas a daemon may use; glibc's default is 8 per core.
ARENAS = 2
#: ``M_ARENA_MAX`` of glibc's ``<malloc.h>``.
_M_ARENA_MAX = -8
_ENV = 'MALLOC_ARENA_MAX'


def limit(arenas=ARENAS):
    """Cap the malloc arenas of this process and of the ones it forks.

    Call it before the process starts threads.

    :returns: True when the cap was set.
    """
    if os.environ.get(_ENV):
        return False
    mallopt = libc.function('mallopt', (ctypes.c_int, ctypes.c_int))
    if mallopt is None:
        return False
    return mallopt(_M_ARENA_MAX, arenas) == 1
