"""A fixed glibc mmap threshold, so that freed frames go back to the system (docs/benchmarks.md#memory).

glibc serves a large block from its own mmap until one such block is freed; it then raises the
threshold to that size, and later frames of that size come from the heap, whose freed space the
process keeps. At 1080p (6.2 MB frames, 2 MB greyscale copies) that slack measured 13-20 MB of
peak RSS. Setting the threshold (1 MiB, as MALLOC_MMAP_THRESHOLD_=1048576 would) turns the
adjustment off. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import structlog

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 1024 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold; False where there is no glibc mallopt."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    structlog.get_logger("facetrack.memory").debug("mmap_threshold", bytes=threshold, applied=done)
    return done
