"""The C allocator's settings for a long-lived process that handles answers of many megabytes.

A LIST of 5,000 Pods is a 10-15 MB answer, read, sliced and written by one worker thread. glibc's
``malloc`` raises its mmap threshold dynamically after such a buffer is freed (up to 32 MiB), so the
next big buffers come from the heap and arenas, whose freed pages stay resident: a worker's RSS keeps
the high-water mark of its biggest answers, per arena, and gthread's threads each get an arena.
Fixing the threshold at 1 MiB sends every big buffer to its own mapping, returned to the system when
freed; at most two arenas keep the small objects of the threads together. The same as setting
``MALLOC_MMAP_THRESHOLD_=1048576 MALLOC_ARENA_MAX=2`` before the process starts, which an operator may
still do (the environment wins: nothing is changed when either is set). No-op where the C library is
not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
ARENA_MAX = 2


def tune() -> bool:
    """Apply the settings to this process; True when glibc took them."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
