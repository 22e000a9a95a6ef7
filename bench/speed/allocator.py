"""The C allocator's part in a CPU training step: glibc's defaults vs `keep_freed_memory()`.

A training step frees and re-allocates the same few-MB activation tensors every step. With
glibc's defaults, blocks that large go back to the kernel when freed and come back as fresh
pages, one page fault per 4 KB; `minigpt.device.keep_freed_memory()` (what `minigpt train`
calls) makes glibc keep them. The setting is per process, so the two systems run in two worker
processes that take turns, round by round, on the same step: the default training step (the
default model shape and batch, bf16 where the CPU has it, Muon) on random ids.

    .venv/bin/python -m bench.speed.allocator --threads 1

Prints ms/step (best round of each worker), minor page faults per step (median round) and each
worker's peak resident memory. Elsewhere than glibc/Linux `keep_freed_memory()` does nothing and says so.
"""

from __future__ import annotations

import argparse

import torch

from minigpt import MiniGPT, ModelConfig, TrainConfig
from minigpt.device import keep_freed_memory
from minigpt.precision import resolve_precision
from minigpt.train import make_optimizer

from ..core import cpu_name, python_module, serve_rounds, take_turns, training_step

VOCAB = 71
SYSTEMS = ("glibc defaults", "keep freed memory")


def worker(system: str, threads: int, steps: int) -> None:
    applied = keep_freed_memory() if system == "keep freed memory" else False
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model_cfg, train_cfg = ModelConfig(vocab_size=VOCAB), TrainConfig()
    model = MiniGPT(model_cfg)
    train_cfg.precision = resolve_precision(train_cfg.precision, torch.device("cpu"),
                                            model_cfg.n_embd)[0]
    step = training_step(model, VOCAB, model_cfg.block_size, train_cfg.batch_size,
                         train_cfg.precision, make_optimizer(model, train_cfg))
    serve_rounds(step, steps, f"{applied} {train_cfg.precision} {train_cfg.batch_size} "
                              f"{model_cfg.block_size}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.threads, args.steps)
    commands = {name: python_module(__spec__.name, "--worker", name, "--threads", str(args.threads),
                                    "--steps", str(args.steps)) for name in SYSTEMS}
    ready, results = take_turns(commands, args.rounds)
    _, precision, batch, block = ready["glibc defaults"]
    print(f"# {cpu_name()} | torch {torch.__version__} | {args.threads} thread(s) | one worker "
          f"process per system, taking turns")
    print(f"# the default training step: default model, batch {batch} x block {block}, {precision}, "
          f"Muon; best of {args.rounds} rounds x {args.steps} steps")
    if ready["keep freed memory"][0] != "True":
        print("# keep_freed_memory() does not apply here (not glibc): both rows are the same")
    best = {name: min(r[0] for r in rows) for name, rows in results.items()}
    print("| allocator | ms/step | chars/s | vs glibc defaults | page faults/step | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in results.items():
        faults = sorted(r[1] for r in rows)[len(rows) // 2]
        print(f"| {name} | {best[name] * 1e3:.1f} | {int(batch) * int(block) / best[name]:,.0f} | "
              f"{best['glibc defaults'] / best[name]:.3f}x | {faults:,.0f} | {rows[-1][2]:.0f} MB |")


if __name__ == "__main__":
    main()
