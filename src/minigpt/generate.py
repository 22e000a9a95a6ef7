"""Autoregressive generation: predict a distribution, pick a character, append it, repeat.

The functions here are the ways in: `generate_text` (prompt + story as one string),
`generate_batch` (many stories at once), `stream` (a story piece by piece) and `generate_ids`
(token ids in, token ids out). All of them run on the generation engine (`engine.py`): one
forward per step over a KV cache shared by every story in the batch. Sampling (temperature,
top-k, top-p, greedy) is in `sampling.py`.

The KV cache: attention at a new position needs the keys and values of every earlier position,
and those never change once computed. So the engine keeps them per layer and feeds the model only
the newest character, instead of re-running the whole context each step. `use_cache=False`
recomputes from scratch; both give the same story (tests/test_generate.py proves it).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .config import SampleConfig
from .engine import Engine, Stream
from .prompt import held_back_space, prompt_ids, prompt_text
from .evaluate import eval_mode
from .model import MiniGPT
from .sampling import filter_logits, make_generator, sample_next
from .tokenizer import Tokenizer

__all__ = ["filter_logits", "generate_batch", "generate_ids", "generate_text", "held_back_space",
           "make_generator", "prompt_ids", "prompt_text", "sample_next", "stream"]


def _options(cfg: SampleConfig | None, options: dict) -> SampleConfig:
    cfg = cfg or SampleConfig()
    if options:
        cfg = SampleConfig(**{**cfg.__dict__, **options})
    cfg.validate()
    return cfg


def _steps(engine: Engine, s: Stream) -> Iterator[Stream]:
    """Run a one-stream engine, yielding the stream after every step."""
    engine.add(s)
    while engine.step():
        yield s


def generate_ids(model: MiniGPT, ids: list[int], cfg: SampleConfig, eos_id: int | None = None,
                 generator: torch.Generator | None = None,
                 first_allowed: torch.Tensor | None = None) -> Iterator[int]:
    """Yield new token ids one at a time after the context `ids` (a single sequence).

    `first_allowed` (a bool mask over the vocabulary) limits the first token to those it marks.
    """
    with eval_mode(model):
        device = next(model.parameters()).device
        s = Stream(ids, cfg, generator or make_generator(cfg.seed, device), eos_id, first_allowed)
        seen = 0
        for s in _steps(Engine(model, max_batch=1, use_cache=cfg.use_cache), s):
            yield from s.tokens[seen:]
            seen = len(s.tokens)


def stream(model: MiniGPT, tokenizer: Tokenizer, prompt: str, cfg: SampleConfig,
           generator: torch.Generator | None = None) -> Iterator[str]:
    """Yield the story one token's text at a time (without the prompt).

    With `cfg.max_new_chars` the story stops at exactly that many characters, cutting the last
    token's text if it runs over. A trailing space of the prompt is held back for subword and
    word tokenizers (engine.py) and not repeated in the story.
    """
    with eval_mode(model):
        engine = Engine(model, tokenizer, max_batch=1, use_cache=cfg.use_cache)
        s = engine.stream(prompt, cfg)  # a bad prompt or setting is a UserError here
        if generator is not None:
            s.generator = generator
        seen = 0
        for s in _steps(engine, s):
            yield from s.pieces[seen:]
            seen = len(s.pieces)


def generate_text(model: MiniGPT, tokenizer: Tokenizer, prompt: str,
                  cfg: SampleConfig | None = None, **options) -> str:
    """Prompt + continuation as one string. `options` override fields of `cfg`."""
    return generate_batch(model, tokenizer, [prompt], cfg, **options)[0]


def generate_batch(model: MiniGPT, tokenizer: Tokenizer, prompts: list[str],
                   cfg: SampleConfig | None = None, seeds: list[int | None] | None = None,
                   max_batch: int = 32, **options) -> list[str]:
    """Prompt + continuation for every prompt, written together by the engine.

    Story i uses seeds[i]; without `seeds`, cfg.seed + i when cfg.seed is set (random otherwise).
    Each story is the one `generate_text` writes alone with that seed.
    """
    cfg = _options(cfg, options)
    if seeds is None:
        seeds = [None if cfg.seed is None else cfg.seed + i for i in range(len(prompts))]
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    with eval_mode(model):
        engine = Engine(model, tokenizer, max_batch=max(1, min(max_batch, len(prompts))),
                        use_cache=cfg.use_cache)
        streams = engine.run([engine.stream(p, cfg, seed) for p, seed in zip(prompts, seeds)])
    return [s.prompt + s.text for s in streams]
