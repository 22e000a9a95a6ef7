"""What a user gets with 1 thread and with every core, on an idle machine and on a busy one.

Trains the default model for `--seconds` per setting (random ids; speed does not depend on the
data) with 1 thread and with the default thread count (physical cores), first alone, then while
`--load` other processes each keep one core busy (another program on a laptop). Prints training
characters per second for each.

    .venv/bin/python -m bench.speed.threads
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from minigpt import MiniGPT, ModelConfig
from minigpt.device import default_threads
from minigpt.precision import resolve_precision

from ..core import cpu_name, training_step


def busy(stop) -> None:
    """Keep one core busy with plain Python arithmetic until told to stop."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x = (x + i * i) % 1_000_003


def train_rate(threads: int, seconds: float, batch: int = 16) -> float:
    torch.set_num_threads(threads)
    cfg = ModelConfig(vocab_size=71)
    torch.manual_seed(0)
    precision = resolve_precision("auto", torch.device("cpu"), cfg.n_embd)[0]
    step = training_step(MiniGPT(cfg), cfg.vocab_size, cfg.block_size, batch, precision)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch * cfg.block_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--load", type=int, default=1, help="busy processes in the contended case")
    args = p.parse_args()
    every = default_threads()
    print(f"# {cpu_name()} | default thread count (physical cores): {every} | "
          f"{args.seconds:g} s per measurement | default model, batch 16")
    print("| machine | 1 thread | " + f"{every} threads (default) |")
    print("|---|---:|---:|")
    for label, load in (("idle", 0), (f"{args.load} other busy process(es)", args.load)):
        stop = mp.Event()
        workers = [mp.Process(target=busy, args=(stop,), daemon=True) for _ in range(load)]
        for w in workers:
            w.start()
        try:
            one, all_ = train_rate(1, args.seconds), train_rate(every, args.seconds)
        finally:
            stop.set()
            for w in workers:
                w.join()
        print(f"| {label} | {one:,.0f} chars/s | {all_:,.0f} chars/s |", flush=True)


if __name__ == "__main__":
    main()
