"""Sampling: turn the model's logits for the next position into one choice.

  temperature  divide the logits by T: T < 1 sharpens (safer), T > 1 flattens (wilder)
  top-k        keep only the k most likely characters
  top-p        keep the smallest set of characters whose probabilities add up to p (nucleus)
  greedy       always take the single most likely character

These functions work on a batch of rows (B, V) and treat every row on its own, so a story's
choices depend only on its own logits and its own random generator, never on the other rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import SampleConfig

# One generator for every row, or one per row (a story's own seeded stream of random numbers).
Generators = torch.Generator | list[torch.Generator] | None


def filter_logits(logits: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
    """Apply temperature, top-k and top-p to logits of shape (B, V); returns new logits."""
    logits = logits / max(cfg.temperature, 1e-8)
    if cfg.top_k is not None and cfg.top_k < logits.size(-1):
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a character when the ones ranked above it already reach top_p; the top one always
        # stays (a top_p so small that it rounds to 0 in float32 would otherwise drop them all).
        drop_sorted = cumulative - F.softmax(sorted_logits, dim=-1) >= cfg.top_p
        drop_sorted[..., 0] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(probs: torch.Tensor, generator: Generators) -> torch.Tensor:
    """One draw per row of `probs` (B, V), rows summing to anything positive -> (B,).

    The exponential race: give every character an Exp(1) random number E_i; the character with
    the largest p_i / E_i wins with probability exactly p_i (its normalised share). The same
    distribution as torch.multinomial at half the cost per call, which matters once per character.
    With a list of generators, row i's random numbers come from generator i alone.
    """
    race = torch.empty_like(probs)
    if isinstance(generator, list) and len(generator) > 1:
        for row, own in zip(race, generator):
            row.exponential_(generator=own)
    else:
        race.exponential_(generator=generator[0] if isinstance(generator, list) else generator)
    return (probs / race.clamp_min_(1e-30)).argmax(dim=-1)


def sample_next(logits: torch.Tensor, cfg: SampleConfig, generator: Generators) -> torch.Tensor:
    """Choose the next token for each row of logits (B, V) -> (B,).

    The same distribution as softmax(filter_logits(...)), in fewer operations: this runs once
    per generated character, so every call counts (bench/speed/generation.py times it).
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


def group_rows(cfgs: list[SampleConfig]) -> list[tuple[SampleConfig, list[int]]]:
    """Rows (by index) that share sampling settings, with those settings: such rows are filtered
    in one call (the filters take one setting per call)."""
    groups: dict[tuple, list[int]] = {}
    for row, cfg in enumerate(cfgs):
        key = (cfg.greedy or cfg.temperature == 0, cfg.temperature, cfg.top_k, cfg.top_p)
        groups.setdefault(key, []).append(row)
    return [(cfgs[rows[0]], rows) for rows in groups.values()]


def sample_rows(logits: torch.Tensor, groups: list[tuple[SampleConfig, list[int]]],
                generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row of logits (B, V), row i with its group's settings and generators[i]."""
    if len(groups) == 1:
        return sample_next(logits, groups[0][0], generators)
    tokens = torch.empty(len(logits), dtype=torch.long, device=logits.device)
    for cfg, rows in groups:
        index = torch.tensor(rows, device=logits.device)
        tokens[index] = sample_next(logits[index], cfg, [generators[r] for r in rows])
    return tokens


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
