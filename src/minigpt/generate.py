"""Autoregressive generation: predict a distribution, pick a character, append it, repeat.

Sampling turns the model's logits into one choice:
  temperature  divide the logits by T: T < 1 sharpens (safer), T > 1 flattens (wilder)
  top-k        keep only the k most likely characters
  top-p        keep the smallest set of characters whose probabilities add up to p (nucleus)
  greedy       always take the single most likely character

The KV cache: attention at a new position needs the keys and values of every earlier position,
and those never change once computed. So we keep them per layer and feed the model only the newest
character, instead of re-running the whole context each step. `use_cache=False` recomputes from
scratch; both give the same logits (tests/test_generate.py proves it).

Learned position embeddings stop at block_size. When a story grows past that, the context slides:
it restarts from the last 3/4 of a block, and both paths follow exactly the same rule.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .config import SampleConfig
from .data import normalise_characters
from .model import MiniGPT
from .tokenizer import CharTokenizer


def filter_logits(logits: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
    """Apply temperature, top-k and top-p to logits of shape (B, V); returns new logits."""
    logits = logits / max(cfg.temperature, 1e-8)
    if cfg.top_k is not None and cfg.top_k < logits.size(-1):
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a character when the ones ranked above it already reach top_p; the top one stays.
        drop_sorted = cumulative - F.softmax(sorted_logits, dim=-1) >= cfg.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Choose the next token for each row of logits (B, V) -> (B,)."""
    if cfg.greedy or cfg.temperature == 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(filter_logits(logits.float(), cfg), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_ids(model: MiniGPT, ids: list[int], cfg: SampleConfig, eos_id: int | None = None,
                 generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield new token ids one at a time after the context `ids` (a single sequence)."""
    was_training = model.training
    model.eval()
    try:
        yield from _generate(model, list(ids), cfg, eos_id, generator)
    finally:
        model.train(was_training)


def _generate(model, seq, cfg, eos_id, generator) -> Iterator[int]:
    block = model.config.block_size
    keep = max(1, (3 * block) // 4)  # context kept when the window slides
    device = next(model.parameters()).device
    start = max(0, len(seq) - block)
    cache, cached_upto = None, start
    for _ in range(cfg.max_new_tokens):
        if len(seq) - start > block:
            start = len(seq) - keep
            cache = None
        if cfg.use_cache and cache is not None:
            new = seq[cached_upto:]  # only what the cache has not seen: normally one token
        else:
            cache, cached_upto = None, start
            new = seq[start:]
        x = torch.tensor([new], dtype=torch.long, device=device)
        logits, _, present = model(x, past=cache)
        if cfg.use_cache:
            cache, cached_upto = present, len(seq)
        token = int(sample_next(logits[:, -1, :], cfg, generator)[0])
        if cfg.stop_at_eos and token == eos_id:
            return
        seq.append(token)
        yield token


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def prompt_ids(tokenizer: CharTokenizer, prompt: str) -> list[int]:
    """End-of-story then the prompt: the model sees 'a new story starts here, like this'.

    Typographic punctuation in the prompt is mapped to ASCII like the training text; a character
    the vocabulary still lacks is an error that names it (UserError).
    """
    return [tokenizer.eos_id] + tokenizer.encode(normalise_characters(prompt))


def stream(model: MiniGPT, tokenizer: CharTokenizer, prompt: str, cfg: SampleConfig,
           generator: torch.Generator | None = None) -> Iterator[str]:
    """Yield the story one character at a time (without the prompt)."""
    if generator is None:
        generator = make_generator(cfg.seed, next(model.parameters()).device)
    for token in generate_ids(model, prompt_ids(tokenizer, prompt), cfg, tokenizer.eos_id, generator):
        yield tokenizer.decode([token])


def generate_text(model: MiniGPT, tokenizer: CharTokenizer, prompt: str,
                  cfg: SampleConfig | None = None, **options) -> str:
    """Prompt + continuation as one string. `options` override fields of `cfg`."""
    cfg = cfg or SampleConfig()
    if options:
        cfg = SampleConfig(**{**cfg.__dict__, **options})
    cfg.validate()
    return normalise_characters(prompt) + "".join(stream(model, tokenizer, prompt, cfg))
