"""Choosing where to compute: CUDA, then Apple's MPS, then the CPU, and how many CPU threads."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from .errors import UserError

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?", re.ASCII)  # as config.check_device


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes the fastest device present; a named device must exist. The name is checked
    by config.check_device first (auto, cpu, cuda, cuda:N, mps); a name torch would read as
    something else is refused here too, in one line, for callers that skipped that check."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise UserError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's MPS backend is not available here; use --device cpu")
    return torch.device(name)


def physical_cores(cpus: list[int] | None = None, sysfs: str | Path = "/sys/devices/system/cpu") -> int:
    """Physical cores this process may run on: hyper-threads of one core count once.

    Two threads on one core share its matrix units, so a second one adds little to training and
    often slows it (bench/speed/threads.py). Linux: the cores behind the CPUs in our affinity mask;
    macOS: sysctl hw.physicalcpu; elsewhere: the logical CPU count. (`cpus` and `sysfs` stand in
    for the affinity mask and Linux's CPU folder in tests.)
    """
    if cpus is None:
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # macOS and Windows have no affinity call
            cpus = None
    if cpus is not None:
        cores = set()
        for cpu in cpus:
            siblings = Path(sysfs) / f"cpu{cpu}" / "topology" / "thread_siblings_list"
            try:
                cores.add(siblings.read_text().strip())
            except OSError:  # no topology information (some containers): count logical CPUs
                return len(cpus)
        return max(1, len(cores))
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True,
                                 timeout=5, check=True)
            return max(1, int(out.stdout.strip()))
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return os.cpu_count() or 1


def default_threads() -> int:
    """One thread per physical core (see bench/speed/threads.py for 1 vs all threads on a busy box)."""
    return physical_cores()


def set_threads(threads: int | None) -> int:
    """Set torch's CPU threads (None: one per physical core); at most config's MAX_THREADS (1024)."""
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= 1024):
        raise UserError(f"threads must be between 1 and 1024, got {threads!r}")
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    return threads


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let glibc keep the memory a training step frees, for the next step to reuse.

    A CPU training step allocates and frees the same few-MB activation tensors every step. By
    default glibc hands blocks this large to the kernel on free (munmap, or trimming the heap),
    so the next step takes them back one 4 KB page fault at a time: 1,000-3,000 faults and 2-8%
    of a step at the default shape (bench/speed/allocator.py). Fixing the mmap threshold at
    glibc's 32 MB maximum and trimming only beyond 256 MB keeps them in the heap instead; peak
    memory stays within a few MB of what it was, it is just no longer given back between steps.
    Returns whether it applied: only where the C library is glibc (Linux); elsewhere a no-op.
    """
    name = ctypes.util.find_library("c")
    if name is None:  # Windows, or no C library to find
        return False
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    if not (hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version")):  # e.g. musl, macOS
        return False
    kept = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # 1 = accepted
    return bool(kept and libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20))
