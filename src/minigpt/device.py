"""Choosing where to compute: CUDA, then Apple's MPS, then the CPU, and how many CPU threads."""

from __future__ import annotations

import os

import torch

from .errors import UserError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes the fastest device present; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's MPS backend is not available here; use --device cpu")
    return torch.device(name)


def default_threads() -> int:
    """One thread per available core, at most 8: small matrices stop scaling beyond that, and
    oversubscribing a busy laptop makes every step slower."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def set_threads(threads: int | None) -> int:
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    return threads
