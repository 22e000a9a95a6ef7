"""Number precision for training: fp32 everywhere, or bf16 matrix products under autocast.

bfloat16 keeps float32's exponent range with fewer mantissa bits, so a model trains in it without
loss scaling. Under `torch.autocast` the matrix products (and, on a CPU, the attention softmax)
run in bf16 while LayerNorm, the loss, the weights and the optimizer state stay in fp32. It only
pays where the hardware multiplies bf16 natively: NVIDIA GPUs from Ampere on, and CPUs with AVX512-BF16 or AMX.
On such CPUs it helps more the wider the model (bench/speed/precision.py, measured 2026-11-24 on a 2-core
AMD EPYC with AVX512-BF16, 1 thread, 4 layers, block 128, batch 16):

    n_embd      32     64     96    128    192    256
    bf16/fp32  1.32x  1.68x  1.56x  1.94x  1.82x  1.88x   (training characters per second)

(an earlier run: 1.10x at 32, 1.42x at 64). So `auto` picks bf16 from n_embd 64 up when the CPU
has the instructions (below that the gain is within noise and per-operation overhead dominates),
and fp32 otherwise: without them bf16 arithmetic is not native, so `auto` does not pick it there.
`--precision fp32|bf16` overrides. Held-out evaluation always runs in fp32.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import torch

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_WIDTH = 64  # below this n_embd, bf16 autocast gains little on a CPU


def cpu_bf16_features(cpuinfo: str | None = None) -> list[str]:
    """The bf16 instruction sets this CPU reports (Linux /proc/cpuinfo, or the `cpuinfo` text
    given; elsewhere: none known)."""
    if cpuinfo is None:
        if not sys.platform.startswith("linux"):
            return []
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return []


def resolve_precision(requested: str, device: torch.device, n_embd: int) -> tuple[str, str]:
    """'auto' | 'fp32' | 'bf16' -> ('fp32' or 'bf16', the reason in a few words)."""
    if requested not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested, "asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "the GPU has bf16 units"
        return "fp32", "the GPU has no bf16 units"
    if device.type != "cpu":
        return "fp32", f"bf16 autocast is not tuned for {device.type}"
    features = cpu_bf16_features()
    if not features:
        return "fp32", "this CPU has no bf16 instructions"
    if n_embd < BF16_MIN_WIDTH:
        return "fp32", f"n_embd {n_embd} < {BF16_MIN_WIDTH}: too narrow for bf16 to pay"
    return "bf16", f"the CPU has {'+'.join(features)} and n_embd >= {BF16_MIN_WIDTH}"


def autocast(precision: str, device: torch.device):
    """A context manager: bf16 autocast on `device`, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def attention_kernel(precision: str, device: torch.device) -> str:
    """The fast attention path's kernel for a model that runs in `precision` on `device`, chosen
    once (MiniGPT.prepare): PyTorch's fused CPU kernel is ~4x slower in bf16 than the same
    formula as three batched matrix calls (bench/speed/precision.py); elsewhere the fused kernel wins."""
    return "baddbmm" if precision == "bf16" and device.type == "cpu" else "sdpa"
