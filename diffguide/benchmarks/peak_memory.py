"""Peak resident memory of a block of code, above what the process held when it started.

torch on the CPU has no allocator statistics (``torch.cuda.max_memory_allocated`` has no CPU
twin), so this samples the process's resident set size (``/proc/self/statm``) from a
background thread every ``interval`` seconds. glibc keeps freed heap memory resident and
raises its mmap threshold as large blocks are freed, which would hide later peaks; the
threshold is therefore fixed (``mallopt``) so that every large tensor is its own mapping,
returned to the system when freed. Off Linux, the peak of ``ru_maxrss`` is used instead.
On CUDA, ``device_peak_memory`` reads the allocator's own peak instead.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import threading
import time

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _fix_malloc_thresholds() -> None:
    name = ctypes.util.find_library("c")
    if not name:
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 1024 * 1024)
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def resident_bytes() -> int:
    """The process's resident set size now (bytes); ``ru_maxrss`` where ``/proc`` is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.megabytes``: the highest resident size seen
    during the block minus the resident size at its start."""

    def __init__(self, interval: float = 1e-3):
        self.interval, self.peak_bytes, self._stop = interval, 0, threading.Event()

    @property
    def megabytes(self) -> float:
        return self.peak_bytes / 2**20

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, resident_bytes() - self._start)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        _fix_malloc_thresholds()
        self._start = resident_bytes()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, resident_bytes() - self._start)



@contextlib.contextmanager
def device_peak_memory(device):
    """Yields a dict whose ``"mb"`` is, after the block, its peak memory above the start (MiB) on
    ``device``: ``torch.cuda.max_memory_allocated`` on CUDA, the resident set (``PeakMemory``) otherwise."""
    device = torch.device(device)
    out = {"mb": float("nan")}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield out
        torch.cuda.synchronize(device)
        out["mb"] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
    else:
        with PeakMemory() as peak:
            yield out
        out["mb"] = peak.megabytes
