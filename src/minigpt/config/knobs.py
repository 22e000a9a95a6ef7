"""The knobs: what the model looks like, how it is trained, how it samples.

Three small dataclasses hold every knob. They keep the seed's names (block_size, batch_size,
n_embd, num_heads, n_layers, ff_hidden_mult, learning_rate, epochs, dropout, max_new_tokens) so the
code reads like the diagram it came from. A field made with `option(default, help)` is also a
command-line option: options.py builds the parser from these fields, so a knob, its default and
its --help line are written once, here. Every value is checked by a `validate()` method that
raises `UserError` with a message a user can act on.

The bounds those checks hold a value to (what is sane, not only what is legal), the one range
check `check_range`, the device names and the memory estimate live in limits.py, where the options
that belong to no dataclass (--port, --stories, --top, ...) find them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .limits import (MAX_BATCH, MAX_BLOCK, MAX_CHARS, MAX_EPOCHS, MAX_FF_MULT, MAX_GRAD_CLIP,
                     MAX_KEEP, MAX_LAYERS, MAX_LEARNING_RATE, MAX_NEW, MAX_SAMPLES, MAX_SEED,
                     MAX_STEPS, MAX_TEMPERATURE, MAX_THREADS, MAX_VOCAB, MAX_WEIGHT_DECAY, MAX_WIDTH,
                     check_device, check_float, check_fraction, check_int, check_memory,
                     check_positive_int, check_range, is_number, parse_duration)


def option(default: Any, help: str, *flags: str, **argparse_kw: Any) -> Any:
    """A dataclass field that is also a command-line option.

    `help` is its --help line (options.py adds the default), `flags` replace the usual names
    (--block-size and the seed's --block_size), `argparse_kw` go to add_argument (choices, or
    action="store_const" for a flag, whose help says what giving it does)."""
    meta = {"help": help, "flags": flags, "argparse": argparse_kw}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _flag(value: bool, help: str, *flags: str) -> Any:
    """An option without a value that sets a bool field to `value`."""
    return option(not value, help, *flags, action="store_const", const=value)


@dataclass
class ModelConfig:
    """The shape of the transformer. Saved in every run directory as part of config.json."""

    vocab_size: int = 0  # filled in from the tokenizer; 0 means "not known yet"
    block_size: int = option(128, "context length in characters: a sentence or two of a story")
    n_embd: int = option(128, "C, the width of every token's vector; small enough for a laptop CPU")
    num_heads: int = option(4, "attention heads; each gets n_embd / num_heads dimensions")
    n_layers: int = option(4, "transformer blocks; 4 learn spelling and simple grammar in minutes")
    ff_hidden_mult: int = option(4, "feed-forward hidden width = ff_hidden_mult * n_embd, as in GPT-2")
    # Off by default: in a 10-minute CPU run its random masks cost more steps than its
    # regularisation returns (docs/performance.md); try 0.1 for long runs.
    dropout: float = option(0.0, "dropout on the residual stream")
    attn_dropout: float | None = option(None, "dropout on attention weights (default: as --dropout)")
    attention: str = option("fast", "fast: the fused SDPA kernel; explicit: written out to read",
                            choices=["fast", "explicit"])
    bias: bool = _flag(False, "no biases in Linear layers and LayerNorms", "--no-bias")
    # The architecture ladder (issue 20; ladder.py says where each idea comes from). The defaults
    # are its winners, GELU and rotary positions (docs/ladder.md); the seed's choices are the
    # "classic" preset, and a config.json saved before these fields existed loads with them
    # (layers.CLASSIC).
    activation: str = option("gelu", "the MLP's nonlinearity: relu (the seed's), relu2 (ReLU "
                             "squared, Primer / modded-nanogpt) or gelu (GPT-2)",
                             choices=["relu", "relu2", "gelu"])
    norm: str = option("layernorm", "layernorm (the seed's) or rmsnorm (no mean subtracted, no bias)",
                       choices=["layernorm", "rmsnorm"])
    qk_norm: bool = _flag(True, "RMSNorm every head's queries and keys before attention")
    positions: str = option("rope", "learned: a table of position vectors (the seed's); rope: "
                            "rotary embeddings, queries and keys turned by their position",
                            choices=["learned", "rope"])
    value_embeddings: bool = _flag(True, "a second token embedding added, with a learned scale "
                                   "per layer, to every layer's attention values")
    x0_mixing: bool = _flag(True, "every block reads a * x + b * x0 (x0: the embeddings), a and b "
                            "learned per layer")
    zero_init: bool = _flag(True, "attention's and the MLP's output projections start at zero")
    tie_head: bool = _flag(True, "the head reuses the token embedding's weights")
    logit_softcap: float | None = option(None, "logits = c * tanh(logits / c): never past +-c "
                                         "(default: no cap)")

    def validate(self) -> None:
        for name, high in (("block_size", MAX_BLOCK), ("n_embd", MAX_WIDTH), ("num_heads", MAX_WIDTH),
                           ("n_layers", MAX_LAYERS), ("ff_hidden_mult", MAX_FF_MULT)):
            check_positive_int(name, getattr(self, name), high)
        check_int("vocab_size", self.vocab_size, 0, MAX_VOCAB)
        if self.n_embd % self.num_heads:
            raise UserError(
                f"num_heads ({self.num_heads}) must divide n_embd ({self.n_embd}): "
                f"each head gets n_embd / num_heads dimensions; try num_heads="
                f"{_nearest_divisor(self.n_embd, self.num_heads)}"
            )
        check_fraction("dropout", self.dropout, allow_zero=True, allow_one=False)
        if self.attn_dropout is not None:
            check_fraction("attn_dropout", self.attn_dropout, allow_zero=True, allow_one=False)
        if self.attention not in ("fast", "explicit"):
            raise UserError(f"attention must be 'fast' or 'explicit', got {self.attention!r}")
        for name, choices in (("activation", ("relu", "relu2", "gelu")),
                              ("norm", ("layernorm", "rmsnorm")), ("positions", ("learned", "rope"))):
            if getattr(self, name) not in choices:
                raise UserError(f"{name} must be {' or '.join(map(repr, choices))}, "
                                f"got {getattr(self, name)!r}")
        for name in ("bias", "qk_norm", "value_embeddings", "x0_mixing", "zero_init", "tie_head"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.positions == "rope" and self.head_size % 2:
            raise UserError(f"positions 'rope' turns pairs of dimensions, so the head size "
                            f"n_embd / num_heads must be even, got {self.head_size}")
        if self.logit_softcap is not None:  # past 1000 the cap is the identity, or inf in fp32
            check_float("logit_softcap", self.logit_softcap, 0, 1000.0, open_low=True)
        check_memory(self)  # the weights and masks alone must fit

    @property
    def head_size(self) -> int:
        return self.n_embd // self.num_heads


@dataclass
class TrainConfig:
    """How a run is trained: data, optimiser, budget, logging. Saved in config.json."""

    # Data specs (data/sources.py); val_data empty: every 1/val_fraction-th story is held out.
    data: list[str] = option(["tinystories"], "tinystories | bundled | file | directory; repeat "
                             "or separate with commas for several")
    val_data: list[str] = option([], "held-out data (default: 10% of the stories)")
    max_chars: int | None = option(None, "read at most this many characters (default: 1,000,000 "
                                   "from the hub, everything from files)")
    val_fraction: float = 0.1  # share of whole stories held out when val_data is empty
    tokenizer: str = option("char", "char: one token per character; bpe: byte-level BPE; word: "
                            "words and punctuation, rare ones as <unk>",
                            choices=["char", "bpe", "word"])
    tokenizer_vocab_size: int | None = option(None, "bpe/word vocabulary size, end-of-story "
                                              "included (default: bpe 512, word 4096)",
                                              "--vocab-size", "--vocab_size", metavar="N")
    # The recipe sweep chose it (docs/performance.md); under torchrun it is the global batch.
    batch_size: int = option(16, "windows per step, shared out among torchrun's processes")
    grad_accum: int = option(1, "micro-batches per process per step, summed before each step")
    # With Muon the seed's blocks train best at 4.5e-3 (beating 2e-3, 3e-3 and 6e-3 in 10-minute
    # CPU runs; AdamW alone: 2e-3); rotary positions and GELU at 6e-3 (docs/ladder.md).
    learning_rate: float = option(6e-3, "peak learning rate, for Muon and AdamW groups alike")
    min_lr_ratio: float = option(0.0, "the schedule ends at learning_rate * min_lr_ratio (0: at 0)")
    # Issue 20's ladder measures wsd against cosine (docs/ladder.md); cosine stays the default
    # until a measurement says otherwise.
    schedule: str = option("cosine", "after warmup: cosine, from the peak down to the end; wsd: "
                           "warmup-stable-decay, the peak held, then a straight line down over "
                           "the last --decay-fraction of the budget (steps, epochs or --max-time)",
                           choices=["cosine", "wsd"])
    decay_fraction: float = option(0.2, "--schedule wsd: the share of the budget spent decaying, "
                                   "in (0, 1]")
    warmup_steps: int = option(100, "linear warmup, so the first Adam steps do not blow up")
    # 0.5 beat 0.1 and 1.0 in 10-minute CPU runs, where a small model sees its data many times.
    weight_decay: float = option(0.5, "on matrices only, never biases, norms or embeddings")
    optimizer: str = option("muon", "muon: Muon for the blocks' matrices, AdamW for embeddings, "
                            "head, biases and norms (optim.py; it won the 10-minute CPU sweep); "
                            "adamw: AdamW for all", choices=["adamw", "muon"])
    muon_momentum: float = option(0.95, "Muon's (Nesterov) momentum, for --optimizer muon")
    beta1: float = 0.9
    beta2: float = 0.99  # a little shorter memory than 0.999: batches are small and noisy
    grad_clip: float = option(1.0, "clip the global gradient norm to this; 0 disables")
    epochs: float | None = option(None, "budget in passes over the training set's characters")
    max_steps: int | None = option(None, "budget in optimizer steps (2000 when no budget is given)")
    max_time: str | None = option(None, "wall-clock budget: 90s, 10m, 1h")
    eval_interval: int = option(250, "steps between held-out evaluations, samples and checkpoints")
    keep_checkpoints: int = option(3, "newest step checkpoints kept (plus the best one)")
    plot_loss: bool = True  # draw loss.png in the run directory when training ends (matplotlib)
    tensorboard: bool = _flag(True, "also write TensorBoard events into RUN/tensorboard: the numbers "
                              "of metrics.jsonl and the sample stories (pip install tensorboard)")
    eval_batches: int = option(20, "batches averaged for each held-out estimate")
    sample_chars: int = option(200, "length of the sample story printed at each evaluation")
    seed: int = option(1337, "seed of the initial weights, the batches and the samples")
    device: str = option("auto", "auto | cpu | cuda | cuda:N | mps")
    threads: int | None = option(None, "CPU threads (default: one per physical core)")
    precision: str = option("auto", "fp32, or bf16 autocast where the hardware has bf16 units; "
                            "auto: bf16 where it is faster",
                            choices=["auto", "fp32", "bf16"])

    def validate(self) -> None:
        for name, high in (("batch_size", MAX_BATCH), ("grad_accum", MAX_BATCH),
                           ("eval_interval", MAX_STEPS), ("eval_batches", MAX_BATCH),
                           ("keep_checkpoints", MAX_KEEP)):
            check_positive_int(name, getattr(self, name), high)
        for name, high in (("max_chars", MAX_CHARS), ("max_steps", MAX_STEPS), ("threads", MAX_THREADS)):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name), high)
        check_int("sample_chars", self.sample_chars, 0, MAX_NEW)
        check_int("warmup_steps", self.warmup_steps, 0, MAX_STEPS)
        check_int("seed", self.seed, 0, MAX_SEED)
        if self.epochs is not None:
            check_float("epochs", self.epochs, 0, MAX_EPOCHS, open_low=True)
        check_float("learning_rate", self.learning_rate, 0, MAX_LEARNING_RATE, open_low=True)
        check_fraction("val_fraction", self.val_fraction, allow_zero=False, allow_one=False)
        check_fraction("min_lr_ratio", self.min_lr_ratio, allow_zero=True, allow_one=True)
        if self.schedule not in ("cosine", "wsd"):
            raise UserError(f"schedule must be cosine or wsd, got {self.schedule!r}")
        check_fraction("decay_fraction", self.decay_fraction, allow_zero=False, allow_one=True)
        check_float("weight_decay", self.weight_decay, 0, MAX_WEIGHT_DECAY)
        check_float("grad_clip", self.grad_clip, 0, MAX_GRAD_CLIP)
        check_fraction("beta1", self.beta1, allow_zero=True, allow_one=False)
        check_fraction("beta2", self.beta2, allow_zero=True, allow_one=False)
        if self.max_time is not None:
            parse_duration(self.max_time)
        check_device(self.device)
        for name in ("plot_loss", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.tokenizer not in ("char", "bpe", "word"):
            raise UserError(f"tokenizer must be char, bpe or word, got {self.tokenizer!r}")
        if self.tokenizer_vocab_size is not None:
            if self.tokenizer == "char":
                raise UserError("--vocab-size is for --tokenizer bpe or word; a character "
                                "vocabulary is the characters of the data")
            low = {"bpe": 257, "word": 4}[self.tokenizer]  # bpe: 256 bytes + end-of-story
            check_range(f"--vocab-size for {self.tokenizer}", self.tokenizer_vocab_size, low, 65535)
        if self.optimizer not in ("adamw", "muon"):
            raise UserError(f"optimizer must be adamw or muon, got {self.optimizer!r}")
        check_fraction("muon_momentum", self.muon_momentum, allow_zero=True, allow_one=False)
        if self.precision not in ("auto", "fp32", "bf16"):
            raise UserError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not self.data:
            raise UserError("no training data given: pass --data tinystories or a file/directory")
        if not all(spec.strip() for spec in self.data + self.val_data):
            raise UserError("an empty data spec: name a file, a directory, 'bundled' or 'tinystories'")


@dataclass
class SampleConfig:
    """How text is drawn from the model's next-character distribution."""

    max_new_tokens: int | None = option(500, "tokens to generate (characters, for a character model)")
    # When set it is the limit and max_new_tokens is ignored (every token is at least a character).
    max_new_chars: int | None = option(None, "characters to generate, whatever the tokenizer "
                                       "(replaces --max-new-tokens)")
    temperature: float = option(0.8, "below 1 sharpens the distribution: fewer spelling slips; "
                                "0 = greedy")
    top_k: int | None = option(None, "keep the k likeliest characters")
    top_p: float | None = option(None, "nucleus sampling: the smallest set of characters whose "
                                 "probability reaches p, in (0, 1]")
    greedy: bool = _flag(True, "always take the likeliest character (temperature ignored)")
    seed: int | None = option(None, "make the story reproducible")
    num_samples: int = option(1, "how many stories, written at once (story i uses --seed + i)")
    stop_at_eos: bool = _flag(False, "keep going past the end of the story", "--no-stop")
    use_cache: bool = _flag(False, "recompute the whole context each step (no KV cache; the "
                            "same result, much slower)", "--no-cache")

    def validate(self) -> None:
        """The one check of sampling settings: the CLI, the Python API and every server request."""
        if self.max_new_tokens is not None:
            check_int("max_new_tokens", self.max_new_tokens, 0, MAX_NEW)
        if self.max_new_chars is not None:
            check_int("max_new_chars", self.max_new_chars, 0, MAX_NEW)
        if self.max_new_tokens is None and self.max_new_chars is None:
            raise UserError("give max_new_tokens or max_new_chars: how long the story may grow")
        check_positive_int("num_samples", self.num_samples, MAX_SAMPLES)
        if isinstance(self.temperature, (int, float)) and not isinstance(self.temperature, bool) \
                and self.temperature < 0:
            raise UserError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        check_float("temperature", self.temperature, 0, MAX_TEMPERATURE)
        if self.top_k is not None:
            check_positive_int("top_k", self.top_k, MAX_VOCAB)
        if self.top_p is not None and not (is_number(self.top_p) and 0 < self.top_p <= 1):
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None:
            check_int("seed", self.seed, 0, MAX_SEED)
        for name in ("greedy", "stop_at_eos", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be true or false, got {getattr(self, name)!r}")


def _nearest_divisor(n: int, near: int) -> int:
    """The divisor of n closest to `near`: the num_heads to suggest when it does not divide n_embd."""
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return min(divisors, key=lambda d: (abs(d - near), d))
