"""What is sane, and the checks that say so: the bounds and checks the knobs' validate() use.

knobs.py holds the dataclasses; this module holds everything a check needs that is not a
dataclass, so the same bounds serve the dataclasses and the options that belong to none
(--port, --stories, --top, ...: cli.py checks them with `check_range` and the MAX_* below).

Every number has bounds that say what is sane, not only what is legal: integers have a lower and
an upper bound (a seed fits torch's 64-bit seed, threads are at most MAX_THREADS), floats must be
finite, and the memory a model and a batch need is estimated before anything is allocated
(`check_memory`): a size that would need more than the machine's memory is refused with the
estimate. Each check raises `UserError` with a message a user can act on.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:  # knobs.py imports this module; the hint alone needs ModelConfig
    from .knobs import ModelConfig

# What is sane. Python's integers have no limit, torch's are 64-bit, and a value past these is a
# typo or a fuzzer, never a plan: each is far beyond what this project's models and machines use.
MAX_SEED = 2**63 - 1          # torch.manual_seed takes 64 bits; seed + story index stays inside
MAX_THREADS = 1024            # torch threads (a 2-socket server has ~256 logical CPUs)
MAX_STEPS = 10**12            # optimizer steps, warmup and evaluation intervals
MAX_EPOCHS = 10**6
MAX_CHARS = 10**13            # 10 TB of text
MAX_BLOCK = 1 << 20           # context length; the memory estimate usually refuses far less
MAX_WIDTH = 1 << 16           # n_embd
MAX_LAYERS = 1 << 12
MAX_FF_MULT = 64
MAX_VOCAB = 1 << 24
MAX_BATCH = 1 << 20           # windows per step, micro-batches, evaluation batches
MAX_KEEP = 10**4              # checkpoints kept
MAX_NEW = 10**7               # tokens or characters generated per story
MAX_SAMPLES = 10**4           # stories written by one command
MAX_TEMPERATURE = 100.0       # 5 is already noise; serve.py allows up to 5
MAX_LEARNING_RATE = 10.0
MAX_WEIGHT_DECAY = 100.0
MAX_GRAD_CLIP = 1e6
MAX_DURATION = 366 * 24 * 3600  # --max-time: a year


def check_range(name: str, value: Any, low: float, high: float | None = None,
                most: float | None = None) -> None:
    """Refuse a number below `low` or above `high`, in one line naming `name` (None passes).
    `most` is a sanity bound rather than a range ("--stories must be at most 10000").

    The one range check: validate() uses it, and so do the options that have no dataclass.
    A float must be finite (nan and inf fail every bound)."""
    if value is None:
        return
    if not is_number(value):
        raise UserError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value}")
    if most is not None and value > most and (high is None or value <= high):
        raise UserError(f"{name} must be at most {most}, got {value}")
    if low <= value and (high is None or value <= high):
        return
    if high is not None:
        raise UserError(f"{name} must be between {low} and {high}, got {value}")
    if low == 1 and isinstance(low, int):
        raise UserError(f"{name} must be a positive integer, got {value!r}")
    raise UserError(f"{name} must be >= {low}, got {value}")


def is_number(value: Any) -> bool:
    """An int or a float; a bool is neither here (True is not a batch size)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, high: int | None = None) -> None:
    """An integer in [1, high]."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{name} must be a positive integer, got {value!r}")
    check_range(name, value, 1, high)


def check_int(name: str, value: Any, low: int, high: int) -> None:
    """An integer in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserError(f"{name} must be an integer, got {value!r}")
    if value < low and high is not None and low == 0:
        raise UserError(f"{name} must be >= 0, got {value}")
    check_range(name, value, low, high)


def check_float(name: str, value: Any, low: float, high: float, open_low: bool = False) -> None:
    """A finite number in [low, high] (or (low, high] with `open_low`)."""
    if not is_number(value):
        raise UserError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int) and abs(value) > 2**1000:  # float() of it would overflow
        raise UserError(f"{name} must be between {low} and {high}, got {value}")
    if not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value}")
    if open_low and value <= low:
        raise UserError(f"{name} must be > {low:g}, got {value}")
    if value < low:
        raise UserError(f"{name} must be >= {low:g}, got {value}")
    if value > high:
        raise UserError(f"{name} must be at most {high:g}, got {value}")


def check_fraction(name: str, value: float, allow_zero: bool, allow_one: bool) -> None:
    """A number in (0, 1), with 0 and 1 themselves allowed as asked (dropout may be 0, never 1)."""
    if not is_number(value):
        raise UserError(f"{name} must be a number, got {value!r}")
    low_ok = value > 0 or (allow_zero and value == 0)
    high_ok = value < 1 or (allow_one and value == 1)
    if not (low_ok and high_ok):
        lo, hi = "[" if allow_zero else "(", "]" if allow_one else ")"
        raise UserError(f"{name} must be in {lo}0, 1{hi}, got {value}")


def parse_duration(text: str) -> float:
    """'90' or '90s' -> 90.0, '10m' -> 600.0, '1.5h' -> 5400.0 (seconds)."""
    match = re.fullmatch(r"\s*(\d{1,12}(?:\.\d{1,12})?)\s*([smh]?)\s*", str(text), re.ASCII)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"cannot read duration {text!r}: use a positive number with s, m or h, e.g. 10m")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds > MAX_DURATION:
        raise UserError(f"max_time {text!r} is more than a year; give at most {MAX_DURATION // 3600}h")
    return seconds


DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?", re.ASCII)


def check_device(name: Any) -> str:
    """A device name the project knows: auto, cpu, cuda, cuda:N or mps (device.pick_device then
    checks that it exists here)."""
    if not isinstance(name, str) or not DEVICE_RE.fullmatch(name):
        raise UserError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return name


def machine_memory() -> int | None:
    """Bytes of physical memory on this machine; None where that cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import psutil  # not a dependency; used where it happens to be installed (Windows)
        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - no psutil, or it cannot tell: no memory check
        return None


def parameter_count(model: ModelConfig) -> int:
    """How many parameters MiniGPT(model) has, from the shape alone (tests/test_config.py checks
    it against real models with every ladder option): the tables (token embedding, head unless
    tied, positions unless rotary, value embeddings), then per block its four matrices, norms,
    biases and the ladder's learned scalars, and the final norm."""
    V, C, T, L, m, D = (model.vocab_size, model.n_embd, model.block_size, model.n_layers,
                        model.ff_hidden_mult, model.head_size)
    tables = V * C * (1 + (not model.tie_head) + model.value_embeddings)
    tables += T * C if model.positions == "learned" else 0
    norm = C * (2 if model.norm == "layernorm" and model.bias else 1)
    per_block = (4 + 2 * m) * C * C + 2 * norm
    per_block += (3 * C + C + m * C + C) if model.bias else 0  # qkv, proj, up, down biases
    per_block += 2 * D if model.qk_norm else 0
    per_block += model.value_embeddings + 2 * model.x0_mixing  # ve_scale; the two mixing weights
    return tables + L * per_block + norm


def memory_estimate(model: ModelConfig, batch: int = 0, training: bool = False) -> dict[str, int]:
    """A lower estimate, in bytes, of what a model of this shape needs: its fp32 weights and
    attention masks; for `training` also gradients and two optimizer states; and for a `batch`
    of windows of block_size tokens the activations of one forward pass (kept for the backward
    pass when training). An unknown vocab_size (0) counts as 256."""
    V = model.vocab_size or 256
    params = parameter_count(dataclasses.replace(model, vocab_size=V))
    T, L = model.block_size, model.n_layers
    weights = 4 * params + 5 * L * T * T  # + the bool mask and float bias of each layer (T x T)
    if model.positions == "rope":  # + the rotary cos and sin tables (T x D each)
        weights += 2 * 4 * T * model.head_size
    if training:
        weights += 3 * 4 * params  # gradients, Adam's two moments (Muon keeps less, AdamW as much)
    C, m = model.n_embd, model.ff_hidden_mult
    tokens = batch * T
    per_layer = tokens * C * (6 + 2 * m)  # values a block keeps (qkv, attention out, MLP, norms)
    if model.attention == "explicit":
        per_layer += 2 * batch * model.num_heads * T * T  # scores and their softmax
    activations = 4 * (L * per_layer + 2 * tokens * V) if batch else 0
    if batch and not training:  # inference keeps only one block's values at a time
        activations = 4 * (per_layer + 2 * tokens * V)
    return {"weights": weights, "activations": activations, "total": weights + activations}


def check_memory(model: ModelConfig, batch: int = 0, training: bool = False,
                 available: int | None = None) -> None:
    """Refuse, before anything is allocated, a model (and batch) that needs more than the
    machine's memory, with the estimate (see memory_estimate). `available` stands in for
    machine_memory() in tests."""
    available = machine_memory() if available is None else available
    if not available:
        return
    need = memory_estimate(model, batch, training)
    if need["total"] <= available:
        return
    what = f"training on batches of {batch}" if training else (f"on a batch of {batch}" if batch else "")
    parts = f"weights and masks {_gb(need['weights'])}" + (
        f", activations {_gb(need['activations'])}" if need["activations"] else "")
    raise UserError(
        f"a model of block_size {model.block_size}, n_embd {model.n_embd}, n_layers {model.n_layers}"
        f"{' ' + what if what else ''} needs about {_gb(need['total'])} of memory ({parts}) but this "
        f"machine has {_gb(available)}: choose a smaller block_size, n_embd, n_layers or batch")


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**30 * 10**6 else f"{n / 2**30:.3g} GiB"

