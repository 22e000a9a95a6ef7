"""The timed unit of the training benchmarks: one full step on random ids, warmed up."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from minigpt.precision import autocast  # noqa: E402


def training_step(model: torch.nn.Module, vocab: int, block: int, batch: int, precision: str,
                  optimizer: torch.optim.Optimizer | None = None) -> Callable[[], None]:
    """A function running forward (under `precision`), backward and an optimizer step on a fixed
    random batch; speed does not depend on the data. Three warm-up steps are run here."""
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, block))
    y = torch.randint(0, vocab, (batch, block))
    cpu = torch.device("cpu")

    def step() -> None:
        with autocast(precision, cpu):
            loss = model(x, y)[1]  # MiniGPT and the naive model both return (logits, loss, ...)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    return step
