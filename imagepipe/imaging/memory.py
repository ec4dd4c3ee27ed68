"""Handing freed heap memory back to the system after a large refused job.

glibc keeps freed memory inside the process: after a large allocation is
freed, its heap (or a thread's arena) stays as large as it grew, and the
memory counts as the process's own.  A refused source leaves nothing behind
that a later job would reuse soon, so the pages go back at once.
"""

import ctypes
import ctypes.util

TRIM_AFTER = 1 << 20  # bytes of source: smaller refusals leave too little to matter

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_malloc_trim = getattr(_libc, "malloc_trim", None)  # glibc only


def trim():
    """Return the free pages of every heap arena to the system (a no-op without glibc)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
