"""The Python API in three verbs: load a model, generate from it (one story or many at once),
evaluate it on held-out text."""

from __future__ import annotations

from pathlib import Path

from .config import SampleConfig
from .evaluate import evaluate_data
from .generate import generate_batch as _generate_batch
from .generate import generate_text
from .model import MiniGPT
from .pretrained import load as _load
from .tokenizer import Tokenizer


def load(source: str | Path | None = "bundled", device: str = "auto") -> tuple[MiniGPT, Tokenizer, dict]:
    """(model in eval mode, tokenizer, config.json) from a run directory, a model directory,
    'bundled' (the model shipped in the package) or a Hub repository id; None: the newest run
    under ./runs. The loader is `minigpt.pretrained.load`."""
    return _load(source, device)


def generate(model: MiniGPT, tokenizer: Tokenizer, prompt: str = "", **options) -> str:
    """Prompt + continuation. Options: any SampleConfig field (max_new_tokens, temperature, top_k,
    top_p, greedy, seed, stop_at_eos, use_cache)."""
    return generate_text(model, tokenizer, prompt, SampleConfig(), **options)


def generate_batch(model: MiniGPT, tokenizer: Tokenizer, prompts: list[str],
                   seeds: list[int | None] | None = None, max_batch: int = 32, **options) -> list[str]:
    """Prompt + continuation for each prompt, all written at once (up to `max_batch` together).
    Story i uses seeds[i], or seed + i with the `seed` option; each is the story `generate`
    writes alone with that seed. Options as for `generate`."""
    return _generate_batch(model, tokenizer, list(prompts), SampleConfig(), seeds, max_batch, **options)


def evaluate(model: MiniGPT, tokenizer: Tokenizer, data: str | list[str],
             max_chars: int | None = None) -> dict:
    """Held-out loss on data specs (files, directories, 'bundled'): nats_per_char, bits_per_char,
    perplexity (per character, whatever the tokenizer), chars, tokens, nats_per_token, and
    skipped_chars (characters a char vocabulary lacks, left out); unk_share for word models."""
    return evaluate_data(model, tokenizer, data, max_chars)
