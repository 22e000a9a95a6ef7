"""Shared fixtures: small story text made here, and a tiny trained run reused across tests."""

from __future__ import annotations

import random

import pytest

NAMES = ["Lily", "Tom", "Mia", "Ben", "Sue", "Max"]
THINGS = ["ball", "kite", "cat", "tree", "cake", "boat"]


def make_stories(n: int, seed: int = 0) -> list[str]:
    """Small, regular stories: enough structure for a tiny model to learn quickly."""
    rng = random.Random(seed)
    stories = []
    for _ in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        stories.append(f"Once upon a time, {name} had a {thing}.\n{name} loved the {thing} very much. "
                       f"\"I like my {thing}!\" said {name}. The end.")
    return stories


def write_txt(path, stories) -> str:
    path.write_text("\n<|endoftext|>\n".join(stories) + "\n<|endoftext|>\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def story_file(tmp_path_factory):
    return write_txt(tmp_path_factory.mktemp("data") / "stories.txt", make_stories(300))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, story_file):
    """A small model trained for 120 steps: shared by the generate/eval/CLI tests."""
    from minigpt import ModelConfig, TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(ModelConfig(block_size=32, n_embd=32, num_heads=4, n_layers=2, dropout=0.0),
          TrainConfig(data=[story_file], batch_size=16, max_steps=120, eval_interval=60,
                      eval_batches=2, sample_chars=20, threads=1, warmup_steps=10),
          out, log=lambda *a: None)
    return out


# The architecture ladder (minigpt/ladder.py): the seed's design, each idea alone, the modern preset
# and all at once
# (ReLU², the last activation named). Tests that prove a path equals its reference take these.
def _ladder():
    from minigpt.config import CLASSIC, MODERN
    from minigpt.ladder import RUNGS

    every = {k: v for rung in RUNGS.values() for k, v in rung.items()}
    return [pytest.param(dict(CLASSIC), id="seed"),
            *(pytest.param(kw, id=name) for name, kw in RUNGS.items()),
            pytest.param(dict(MODERN), id="modern"), pytest.param(every, id="all")]


LADDER = _ladder()


def shaken(model, seed: int = 0):
    """`model` with every parameter moved a little from its initial value, as training would:
    zero-initialised projections, the ladder's scalars (1, 0, 0.5) and the norms' unit gains
    would otherwise hide what a path does with them."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model
