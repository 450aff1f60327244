"""Functions of the C library the interpreter runs with, through ctypes.

Why this module exists: precache calls two C library functions that
neither the standard library nor a maintained package binds:
``sync_file_range(2)`` (:mod:`precache.agent.stores.writeback`) and
``mallopt(3)`` (:mod:`precache.common.malloc_tuning`). Both are taken
from the C library already loaded into the interpreter (``dlopen(NULL)``),
which needs no ``ldconfig`` or compiler to find it.
"""

import ctypes


def function(name, argtypes, restype=ctypes.c_int):
    """Return the C library's function ``name``, typed; None without it.

    Errors it reports through ``errno`` are read with
    :func:`ctypes.get_errno`.
    """
    try:
        found = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    found.argtypes = argtypes
    found.restype = restype
    return found
