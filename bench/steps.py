"""The timed unit of the training benchmarks: one full step on random ids, warmed up; and worker
processes that take turns running it, for settings that hold for a whole process."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
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


def serve_rounds(step: Callable[[], None], steps: int, ready: str) -> None:
    """Worker side: say `ready`, then time `steps` steps each time the parent writes a line, and
    answer "seconds-per-step minor-page-faults-per-step peak-RSS-MB"."""
    print(f"ready {ready}", flush=True)
    for _ in sys.stdin:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - start) / steps
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{seconds} {(usage.ru_minflt - faults) / steps} {usage.ru_maxrss / 1024}", flush=True)


def take_turns(commands: dict[str, list[str]], rounds: int) -> tuple[dict[str, list[str]],
                                                                      dict[str, list[list[float]]]]:
    """Parent side: start one worker process per system, then run `rounds` rounds in which each
    worker times its steps in turn (only one runs at a time). Returns each worker's `ready` words
    and its rounds as [seconds per step, page faults per step, peak RSS MB]."""
    procs = {name: subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name, cmd in commands.items()}
    ready = {}
    for name, proc in procs.items():
        words = proc.stdout.readline().split()
        if not words or words[0] != "ready":
            raise SystemExit(f"the {name!r} worker did not start (its error is above)")
        ready[name] = words[1:]
    results: dict[str, list[list[float]]] = {name: [] for name in procs}
    for _ in range(rounds):
        for name, proc in procs.items():
            proc.stdin.write("go\n")
            proc.stdin.flush()
            results[name].append([float(v) for v in proc.stdout.readline().split()])
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    return ready, results
