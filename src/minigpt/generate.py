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

A prompt that ends in a space is a trap for subword and word tokenizers: their tokens carry the
space in front of a word (" little"), so a lone trailing space is a token the model almost never
saw followed by a word, and it steers the story towards rare words. `stream` holds such a space
back, feeds the prompt without it, and lets the first new token be only one that starts with it
(a small form of "token healing"); the text the user sees is the same.

Learned position embeddings stop at block_size. When a story grows past that, the context slides:
it restarts from the last 3/4 of a block, and both paths follow exactly the same rule.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .config import SampleConfig
from .data import normalise_characters
from .model import KVCache, MiniGPT
from .tokenizer import Tokenizer


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


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of `probs` (B, V), rows summing to anything positive -> (B,).

    The exponential race: give every character an Exp(1) random number E_i; the character with
    the largest p_i / E_i wins with probability exactly p_i (its normalised share). The same
    distribution as torch.multinomial at half the cost per call, which matters once per character.
    """
    race = torch.empty_like(probs).exponential_(generator=generator).clamp_min_(1e-30)
    return (probs / race).argmax(dim=-1)


def sample_next(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Choose the next token for each row of logits (B, V) -> (B,).

    The same distribution as softmax(filter_logits(...)), in fewer operations: this runs once
    per generated character, so every call counts (bench/generation.py times it).
    """
    if cfg.greedy or cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if cfg.top_k is not None and cfg.top_k < logits.size(-1):
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / max(cfg.temperature, 1e-8), dim=-1)
    if cfg.top_p is None or cfg.top_p >= 1.0:
        return draw(probs, generator)
    # Nucleus: sort once, keep a character while the ones ranked above it sum to less than top_p
    # (so the top one always stays), and draw among the kept ones.
    sorted_probs, order = torch.sort(probs, descending=True, dim=-1)
    above = sorted_probs.cumsum(dim=-1) - sorted_probs
    choice = draw(sorted_probs.masked_fill(above >= cfg.top_p, 0.0), generator)
    return order.gather(-1, choice[:, None]).squeeze(-1)


# As a decorator on a generator function, inference_mode is entered around every resume, so it
# holds even when the web server resumes the generator from another worker thread.
@torch.inference_mode()
def generate_ids(model: MiniGPT, ids: list[int], cfg: SampleConfig, eos_id: int | None = None,
                 generator: torch.Generator | None = None,
                 first_allowed: torch.Tensor | None = None) -> Iterator[int]:
    """Yield new token ids one at a time after the context `ids` (a single sequence).

    `first_allowed` (a bool mask over the vocabulary) limits the first token to those it marks.
    """
    was_training = model.training
    model.eval()
    try:
        yield from _generate(model, list(ids), cfg, eos_id, generator, first_allowed)
    finally:
        model.train(was_training)


def _generate(model, seq, cfg, eos_id, generator, first_allowed=None) -> Iterator[int]:
    block = model.config.block_size
    keep = max(1, (3 * block) // 4)  # context kept when the window slides
    param = next(model.parameters())
    start = max(0, len(seq) - block)  # the window: the model sees seq[start:]
    cache = KVCache(model.config, 1, param.dtype, param.device) if cfg.use_cache else None
    weights = model.decode_weights() if cfg.use_cache else None
    fed = start  # with the cache: seq[start:fed] is already in it
    limit = cfg.max_new_chars if cfg.max_new_chars is not None else cfg.max_new_tokens
    for _ in range(limit):
        if len(seq) - start > block:
            start = fed = len(seq) - keep  # slide: positions restart, so the cache does too
            if cache is not None:
                cache.length = 0
        if cache is not None:
            logits = model.decode(torch.tensor([seq[fed:]], device=param.device), cache, weights)
            fed = len(seq)
        else:  # the reference path: re-run the whole window
            logits = model(torch.tensor([seq[start:]], device=param.device))[0][:, -1, :]
        if first_allowed is not None:
            logits = logits.masked_fill(~first_allowed.to(logits.device), float("-inf"))
            first_allowed = None
        token = sample_next(logits, cfg, generator)[0].item()
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


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """End-of-story then the prompt: the model sees 'a new story starts here, like this'.

    Typographic punctuation in the prompt is mapped to ASCII like the training text; a character
    the vocabulary still lacks is an error that names it (UserError).
    """
    return [tokenizer.eos_id] + tokenizer.encode(normalise_characters(prompt))


def held_back_space(tokenizer: Tokenizer, prompt: str) -> tuple[str, torch.Tensor | None]:
    """For a subword or word tokenizer and a prompt ending in spaces: (those spaces, a mask of
    the tokens whose text starts with them). ("", None) when there is nothing to hold back, for
    a character model, or when no token starts with those spaces."""
    held = prompt[len(prompt.rstrip(" ")):]
    if tokenizer.kind == "char" or not held:
        return "", None
    allowed = torch.tensor([tokenizer.piece(i).startswith(held) for i in range(tokenizer.vocab_size)])
    return (held, allowed) if bool(allowed.any()) else ("", None)


def stream(model: MiniGPT, tokenizer: Tokenizer, prompt: str, cfg: SampleConfig,
           generator: torch.Generator | None = None) -> Iterator[str]:
    """Yield the story one token's text at a time (without the prompt).

    With `cfg.max_new_chars` the story stops at exactly that many characters, cutting the last
    token's text if it runs over. A trailing space of the prompt is held back for subword and
    word tokenizers (`held_back_space`, the module docstring) and not repeated in the story.
    """
    if generator is None:
        generator = make_generator(cfg.seed, next(model.parameters()).device)
    left = cfg.max_new_chars
    prompt = normalise_characters(prompt)
    held, first_allowed = held_back_space(tokenizer, prompt)
    ids = prompt_ids(tokenizer, prompt[: len(prompt) - len(held)])
    tokens = generate_ids(model, ids, cfg, tokenizer.eos_id, generator, first_allowed)
    for token in tokens:
        piece = tokenizer.piece(token)
        if held:  # the first token starts with the held-back space, already in the prompt
            piece, held = piece[len(held):], ""
        if left is not None:
            piece = piece[:left]
            left -= len(piece)
        yield piece
        if left == 0:
            tokens.close()  # leave inference mode and restore the model's train/eval state
            return


def generate_text(model: MiniGPT, tokenizer: Tokenizer, prompt: str,
                  cfg: SampleConfig | None = None, **options) -> str:
    """Prompt + continuation as one string. `options` override fields of `cfg`."""
    cfg = cfg or SampleConfig()
    if options:
        cfg = SampleConfig(**{**cfg.__dict__, **options})
    cfg.validate()
    return normalise_characters(prompt) + "".join(stream(model, tokenizer, prompt, cfg))
