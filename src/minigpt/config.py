"""Configuration: what the model looks like, how it is trained, how it samples.

Three small dataclasses hold every knob. They keep the seed's names (block_size, batch_size, n_embd,
num_heads, n_layers, ff_hidden_mult, learning_rate, epochs, dropout, max_new_tokens) so the code reads
like the diagram it came from. Values come from, in increasing priority:

    dataclass defaults  <  a TOML file (--config)  <  command-line options

and are checked by `validate()` methods that raise `UserError` with a message a user can act on.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError


@dataclass
class ModelConfig:
    """The shape of the transformer. Saved in every run directory as part of config.json."""

    vocab_size: int = 0  # filled in from the tokenizer; 0 means "not known yet"
    block_size: int = 128  # context length in characters: a sentence or two of a story
    n_embd: int = 128  # C, the width of every token's vector; small enough for a laptop CPU
    num_heads: int = 4  # heads of 32 dims each: enough to attend to several things at once
    n_layers: int = 4  # depth; 4 blocks learn spelling and simple grammar in minutes
    ff_hidden_mult: int = 4  # feed-forward hidden width = 4 * n_embd, as in GPT-2
    dropout: float = 0.0  # off by default: in a 10-minute CPU run its random masks cost more
    # steps than its regularisation returns (docs/performance.md); try 0.1 for long runs
    attn_dropout: float | None = None  # dropout on attention weights; None: the same as dropout
    attention: str = "fast"  # "fast" (fused SDPA kernel) or "explicit" (written out to read)
    bias: bool = True  # biases in Linear and LayerNorm, as in the original GPT

    def validate(self) -> None:
        for name in ("block_size", "n_embd", "num_heads", "n_layers", "ff_hidden_mult"):
            _positive_int(name, getattr(self, name))
        if self.vocab_size < 0:
            raise UserError(f"vocab_size must be >= 0, got {self.vocab_size}")
        if self.n_embd % self.num_heads:
            raise UserError(
                f"num_heads ({self.num_heads}) must divide n_embd ({self.n_embd}): "
                f"each head gets n_embd / num_heads dimensions; try num_heads="
                f"{_nearest_divisor(self.n_embd, self.num_heads)}"
            )
        _fraction("dropout", self.dropout, allow_zero=True, allow_one=False)
        if self.attn_dropout is not None:
            _fraction("attn_dropout", self.attn_dropout, allow_zero=True, allow_one=False)
        if self.attention not in ("fast", "explicit"):
            raise UserError(f"attention must be 'fast' or 'explicit', got {self.attention!r}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.num_heads


@dataclass
class TrainConfig:
    """How a run is trained: data, optimiser, budget, logging. Saved in config.json."""

    data: list[str] = field(default_factory=lambda: ["tinystories"])  # sources, see data.sources
    val_data: list[str] = field(default_factory=list)  # held-out sources; default: 10% of data
    max_chars: int | None = None  # cap on characters read (the hub defaults to 1,000,000)
    val_fraction: float = 0.1  # share of whole stories held out when val_data is empty
    tokenizer: str = "char"  # char | bpe | word (tokenizer.py); bpe and word are trained on the data
    tokenizer_vocab_size: int | None = None  # bpe/word vocabulary (--vocab-size); None: per-kind default
    batch_size: int = 16  # windows per step (the recipe sweep: docs/performance.md)
    # (the global batch: under torchrun it is shared out among the processes)
    grad_accum: int = 1  # micro-batches per process per step, summed before the optimizer step
    learning_rate: float = 4.5e-3  # peak LR, for Muon and AdamW groups alike; with Muon 4.5e-3 beat
    # 2e-3, 3e-3 and 6e-3 in 10-minute CPU runs (AdamW alone: 2e-3; docs/performance.md)
    min_lr_ratio: float = 0.0  # cosine decays to learning_rate * min_lr_ratio (0: all the way)
    warmup_steps: int = 100  # linear warmup keeps the first Adam steps from blowing up
    weight_decay: float = 0.5  # matrices only, never biases, norms or embeddings; 0.5 beat 0.1
    # and 1.0 in 10-minute CPU runs, where a small model sees its data many times (docs/performance.md)
    optimizer: str = "muon"  # muon: Muon for the blocks' matrices, AdamW for embeddings, head,
    # biases and norms (optim.py); adamw: AdamW for all. Muon won the 10-minute CPU sweep
    muon_momentum: float = 0.95  # Muon's momentum (Nesterov), for --optimizer muon
    beta1: float = 0.9
    beta2: float = 0.99  # a little shorter memory than 0.999: batches are small and noisy
    grad_clip: float = 1.0  # clip the global gradient norm; 0 disables
    epochs: float | None = None  # one epoch = as many predicted characters as the training set has
    max_steps: int | None = None  # optimizer steps (2000 when no budget at all is given)
    max_time: str | None = None  # wall-clock budget like "90s", "10m", "1h"
    eval_interval: int = 250  # steps between held-out evaluations, samples and checkpoints
    keep_checkpoints: int = 3  # newest step checkpoints kept (plus the best one)
    plot_loss: bool = True  # draw loss.png in the run directory when training ends (matplotlib)
    eval_batches: int = 20  # batches averaged for each held-out estimate
    sample_chars: int = 200  # length of the sample story printed at each evaluation
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int | None = None  # CPU threads; default: one per physical core
    precision: str = "auto"  # auto | fp32 | bf16 autocast; auto: bf16 where it is faster (precision.py)

    def validate(self) -> None:
        _positive_int("batch_size", self.batch_size)
        _positive_int("grad_accum", self.grad_accum)
        _positive_int("eval_interval", self.eval_interval)
        _positive_int("eval_batches", self.eval_batches)
        _positive_int("keep_checkpoints", self.keep_checkpoints)
        if self.max_chars is not None:
            _positive_int("max_chars", self.max_chars)
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if self.sample_chars < 0:
            raise UserError(f"sample_chars must be >= 0, got {self.sample_chars}")
        if self.warmup_steps < 0:
            raise UserError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise UserError(f"epochs must be > 0, got {self.epochs}")
        if not self.learning_rate > 0:
            raise UserError(f"learning_rate must be > 0, got {self.learning_rate}")
        _fraction("val_fraction", self.val_fraction, allow_zero=False, allow_one=False)
        _fraction("min_lr_ratio", self.min_lr_ratio, allow_zero=True, allow_one=True)
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise UserError("weight_decay and grad_clip must be >= 0")
        if self.max_time is not None:
            parse_duration(self.max_time)
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise UserError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.tokenizer not in ("char", "bpe", "word"):
            raise UserError(f"tokenizer must be char, bpe or word, got {self.tokenizer!r}")
        if self.tokenizer_vocab_size is not None:
            if self.tokenizer == "char":
                raise UserError("--vocab-size is for --tokenizer bpe or word; a character "
                                "vocabulary is the characters of the data")
            low = {"bpe": 257, "word": 4}[self.tokenizer]  # bpe: 256 bytes + end-of-story
            if not low <= self.tokenizer_vocab_size <= 65535:
                raise UserError(f"--vocab-size for {self.tokenizer} must be between {low} and 65535, "
                                f"got {self.tokenizer_vocab_size}")
        if self.optimizer not in ("adamw", "muon"):
            raise UserError(f"optimizer must be adamw or muon, got {self.optimizer!r}")
        _fraction("muon_momentum", self.muon_momentum, allow_zero=True, allow_one=False)
        if self.precision not in ("auto", "fp32", "bf16"):
            raise UserError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not self.data:
            raise UserError("no training data given: pass --data tinystories or a file/directory")


@dataclass
class SampleConfig:
    """How text is drawn from the model's next-character distribution."""

    max_new_tokens: int | None = 500  # tokens to add (characters for the char tokenizer)
    max_new_chars: int | None = None  # characters to add, whatever the tokenizer; when set, it
    # is the limit and max_new_tokens is ignored (every token is at least one character)
    temperature: float = 0.8  # < 1 sharpens the distribution: fewer spelling slips
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p
    greedy: bool = False  # always take the most likely character (temperature ignored)
    seed: int | None = None  # fixes the random draws for a reproducible story
    num_samples: int = 1
    stop_at_eos: bool = True  # stop when the model ends the story
    use_cache: bool = True  # KV cache: same result as recomputing, much faster

    def validate(self) -> None:
        for name in ("max_new_tokens", "max_new_chars"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UserError(f"{name} must be >= 0, got {value}")
        if self.max_new_tokens is None and self.max_new_chars is None:
            raise UserError("give max_new_tokens or max_new_chars: how long the story may grow")
        _positive_int("num_samples", self.num_samples)
        if not self.temperature >= 0:
            raise UserError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if self.top_k is not None:
            _positive_int("top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")


# Named recipes. The dataclass defaults above *are* the "default" preset: the recipe that reached
# the lowest held-out bits/char in a fixed CPU budget (docs/performance.md has the sweep). "adamw"
# is the best recipe without Muon; "seed" is the recipe the project started from, kept to compare
# against.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"about": "the best recipe we measured for a laptop CPU (the defaults)",
                "model": {}, "train": {}},
    "adamw": {"about": "the best AdamW-only recipe: the defaults with AdamW at 2e-3",
              "model": {}, "train": {"optimizer": "adamw", "learning_rate": 2e-3}},
    "seed": {"about": "the seed's recipe: 4 x 128, block 128, batch 32, Adam 3e-4 constant, fp32",
             "model": {"block_size": 128, "n_embd": 128, "num_heads": 4, "n_layers": 4,
                       "ff_hidden_mult": 4, "dropout": 0.0},
             "train": {"optimizer": "adamw", "batch_size": 32, "learning_rate": 3e-4,
                       "warmup_steps": 0, "min_lr_ratio": 1.0, "weight_decay": 0.0, "beta2": 0.999,
                       "grad_clip": 0.0, "precision": "fp32"}},
}


def preset_sections(name: str | None) -> dict[str, dict[str, Any]]:
    """The model and train overrides of a named preset (none for None)."""
    if name is None:
        return {"model": {}, "train": {}}
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return {"model": dict(PRESETS[name]["model"]), "train": dict(PRESETS[name]["train"])}


def parse_duration(text: str) -> float:
    """'90' or '90s' -> 90.0, '10m' -> 600.0, '1.5h' -> 5400.0 (seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"cannot read duration {text!r}: use a positive number with s, m or h, e.g. 10m")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def from_dict(cls, values: dict[str, Any], where: str):
    """Build dataclass `cls` from `values`, refusing unknown keys and wrong types."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown {where} key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for key, value in values.items():
        if not _type_ok(str(known[key].type), value):
            raise UserError(f"{where} {key} must be of type {known[key].type}, got {value!r}")
    return cls(**values)


def _type_ok(annotation: str, value: Any) -> bool:
    """Does `value` fit a simple annotation such as 'int', 'float | None' or 'list[str]'?"""
    checks = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
              "None": lambda v: v is None,
              "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)}
    return any(checks[part.strip()](value) for part in annotation.split("|"))


def load_toml(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a config file with optional [model], [train] and [sample] tables.

    Keys outside a table are sorted into the right one by name, so a flat file works too.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "sample": {}}
    owners = {"model": ModelConfig, "train": TrainConfig, "sample": SampleConfig}
    for key, value in raw.items():
        if key in sections and isinstance(value, dict):
            sections[key].update(value)
            continue
        for name, cls in owners.items():
            if key in {f.name for f in fields(cls)}:
                sections[name][key] = value
                break
        else:
            raise UserError(f"config file {path}: unknown key {key!r}")
    return sections


def merged(base, overrides: dict[str, Any], where: str):
    """A copy of dataclass `base` with `overrides` applied (None values are ignored)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    current = dataclasses.asdict(base)
    current.update(values)
    return from_dict(type(base), current, where)


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value!r}")


def _fraction(name: str, value: float, allow_zero: bool, allow_one: bool) -> None:
    low_ok = value > 0 or (allow_zero and value == 0)
    high_ok = value < 1 or (allow_one and value == 1)
    if not (low_ok and high_ok):
        lo, hi = "[" if allow_zero else "(", "]" if allow_one else ")"
        raise UserError(f"{name} must be in {lo}0, 1{hi}, got {value}")


def _nearest_divisor(n: int, near: int) -> int:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return min(divisors, key=lambda d: (abs(d - near), d))
