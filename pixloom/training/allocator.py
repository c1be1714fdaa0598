"""glibc allocator tuning for training loops.

Training steps allocate and free the same large activation buffers every step. With glibc's
defaults, blocks above the (dynamic) mmap threshold are returned to the kernel on free and the heap
top is trimmed, so every step pays for fresh page faults; on small VMs this stalled steps by 2-7x
in our measurements (docs/benchmarks.md). Raising the mmap threshold to glibc's maximum and the
trim threshold far above it keeps freed memory in the process for reuse, which is what
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do as environment variables; ``mallopt``
does the same from inside the process, so users need not set anything.

Set ``PIXLOOM_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None


def tune_malloc_for_training() -> bool:
    """Apply the thresholds once per process; returns True when glibc accepted them."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or os.environ.get("PIXLOOM_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
