"""Held-out evaluation: how surprised is the model by text it never trained on?

The loss is the average negative log-likelihood of each next character, in nats (natural log).
Dividing by ln 2 gives bits per character (bpc): how many bits an ideal compressor driven by the
model would spend per character. Perplexity, e^nats, is the number of equally likely characters
the model is effectively choosing between. The end-of-story symbol counts as one character.

With a bpe or word tokenizer the model predicts tokens, not characters. The total loss of a text
is still the number of nats the model spends on it, so bits per character is
total nats / (ln 2 x characters of the text), whatever the tokenizer: that is what makes runs with
different tokenizers comparable. Nats per token is reported too. (A word model's <unk> token
stands for every rare word at once, so its bits/char is flattered by the share of <unk>.)

`evaluate_ids` scores every character exactly once with as much context as the model allows:
windows of block_size overlap by half, and each window scores only the characters the previous
one did not (the first window scores all of its own).

Everything that runs a model without training it (evaluation, generation, the look-inside views)
does so inside `eval_mode(model)`: dropout off, and the model's own mode put back afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from .data import clean_text, get_batch, iter_stories
from .errors import UserError
from .model import MiniGPT
from .tokenizer import Tokenizer


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with the model in eval mode (no dropout), then put back the mode it had, even
    when the block raises: a model in the middle of training stays in training mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def loss_summary(total_nats: float, count: int) -> dict:
    nats = total_nats / max(count, 1)
    return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
            "perplexity": math.exp(nats), "chars": count}


@torch.no_grad()
def evaluate_ids(model: MiniGPT, ids, batch_size: int = 32, stride: int | None = None) -> dict:
    """Exact held-out loss over a whole id sequence (see module docstring)."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    block = model.config.block_size
    stride = stride or max(1, block // 2)
    n = len(ids) - 1  # number of predictions
    if n < 1:
        raise ValueError("need at least two tokens to evaluate")
    windows = []  # (start, length, first scored offset within the window)
    start, scored_upto = 0, 0
    while scored_upto < n:
        length = min(block, n - start)
        windows.append((start, length, scored_upto - start))
        scored_upto = start + length
        start = min(start + stride, max(0, n - block)) if start + length < n else n
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(windows), batch_size):
            group = windows[i : i + batch_size]
            for length in sorted({w[1] for w in group}):  # same length -> one batch
                same = [w for w in group if w[1] == length]
                x = torch.stack([ids[s : s + length] for s, _, _ in same]).to(device)
                y = torch.stack([ids[s + 1 : s + length + 1] for s, _, _ in same]).to(device)
                logits, _, _ = model(x)
                nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
                for row, (_, _, first) in enumerate(same):
                    total += nll[row, first:].sum().item()
                    count += length - first
    return dict(loss_summary(total, count), total_nats=total, tokens=count)


def encode_for_eval(tokenizer: Tokenizer, stories) -> tuple[list[int], int, int]:
    """Clean stories and join them with end-of-story -> (ids, skipped, chars).

    A character model drops characters its vocabulary lacks (`skipped` counts them). `chars` is
    the number of characters the predictions cover: every story character and every end-of-story
    marker but the first, which is only context.
    """
    ids, skipped, chars = [], 0, -1
    for story in stories:
        story = clean_text(story)
        if not story:
            continue
        if tokenizer.kind == "char":
            known = "".join(c for c in story if c in tokenizer.stoi)
            skipped += len(story) - len(known)
            story = known
        ids.append(tokenizer.eos_id)
        ids.extend(tokenizer.encode(story))
        chars += len(story) + 1
    return ids, skipped, max(chars, 0)


def per_char(result: dict, chars: int) -> dict:
    """Turn evaluate_ids' per-token result into per-character figures (plus the per-token ones)."""
    return dict(loss_summary(result["total_nats"], chars), tokens=result["tokens"],
                nats_per_token=result["total_nats"] / max(result["tokens"], 1))


@torch.no_grad()
def estimate_loss(model: MiniGPT, ids: np.ndarray, batches: int, batch_size: int,
                  seed: int = 0) -> float:
    """Mean loss on `batches` random windows; the same windows every call (fixed seed), so values
    logged during training are comparable. Cheaper than evaluate_ids; used while training."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    losses = []
    with eval_mode(model):
        for _ in range(batches):
            x, y = get_batch(ids, batch_size, model.config.block_size, generator, device)
            _, loss, _ = model(x, y)
            losses.append(loss.item())
    return float(np.mean(losses))


def evaluate_data(model: MiniGPT, tokenizer: Tokenizer, data: str | list[str],
                  max_chars: int | None = None) -> dict:
    """Held-out loss on data specs (files, directories, 'bundled'), up to `max_chars` characters:
    what `minigpt eval` and `minigpt.evaluate` report (see api.evaluate for the fields)."""
    specs = [data] if isinstance(data, str) else list(data)

    def stories():
        total = 0
        for spec in specs:
            for story in iter_stories(spec):
                yield story
                total += len(story)
                if max_chars is not None and total >= max_chars:
                    return

    ids, skipped, chars = encode_for_eval(tokenizer, stories())
    if len(ids) < 2:
        raise UserError(f"no text to evaluate in {', '.join(specs)}")
    with torch.inference_mode():
        result = per_char(evaluate_ids(model, ids), chars)
    if tokenizer.kind == "word":
        result["unk_share"] = ids.count(tokenizer.unk_id) / max(len(ids) - 1, 1)
    return dict(result, skipped_chars=skipped)
