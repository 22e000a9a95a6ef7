"""bf16 autocast vs fp32 on this machine: training speed by model width, and held-out quality.

Part 1 (speed): for each n_embd, characters per second of full training steps (forward, backward,
AdamW) in fp32 and under bf16 autocast, same model, same batch, same thread count, interleaved.
Part 2 (quality, --quality-steps N): trains the same model twice from the same seed for N steps,
fp32 and bf16, and scores both on the same held-out text in fp32.

    .venv/bin/python -m bench.speed.precision --threads 1
    .venv/bin/python -m bench.speed.precision --threads 1 --quality-steps 1500
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import torch

from minigpt import ModelConfig, TrainConfig, evaluate, load, train
from minigpt.model import MiniGPT
from minigpt.precision import cpu_bf16_features

from ..core import HELD_OUT, TRAIN, cpu_name, training_step


def step_rate(cfg: ModelConfig, batch: int, precision: str, steps: int) -> float:
    """Training characters per second over `steps` timed steps (after 3 warm-up steps)."""
    torch.manual_seed(0)
    step = training_step(MiniGPT(cfg), cfg.vocab_size, cfg.block_size, batch, precision)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * cfg.block_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--widths", default="32,64,96,128,192,256")
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=2, help="fp32/bf16 alternations; the best counts")
    p.add_argument("--quality-steps", type=int, default=0, help="also train fp32 and bf16 this long")
    p.add_argument("--data", default=str(TRAIN))
    p.add_argument("--val-data", default=str(HELD_OUT))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {cpu_name()} | bf16 instructions: {'+'.join(cpu_bf16_features()) or 'none'} | "
          f"torch {torch.__version__} | {args.threads} thread(s)")
    print(f"# {args.n_layers} layers, block {args.block_size}, batch {args.batch_size}, 4 heads; "
          f"best of {args.rounds} rounds of {args.steps} steps")
    print("| n_embd | params | fp32 chars/s | bf16 chars/s | bf16 / fp32 |")
    print("|---:|---:|---:|---:|---:|")
    for width in (int(w) for w in args.widths.split(",")):
        cfg = ModelConfig(vocab_size=66, n_embd=width, num_heads=4, n_layers=args.n_layers,
                          block_size=args.block_size)
        rates = {"fp32": 0.0, "bf16": 0.0}
        for _ in range(args.rounds):
            for precision in rates:
                rates[precision] = max(rates[precision],
                                       step_rate(cfg, args.batch_size, precision, args.steps))
        params = MiniGPT(cfg).num_parameters()
        print(f"| {width} | {params:,} | {rates['fp32']:,.0f} | {rates['bf16']:,.0f} | "
              f"{rates['bf16'] / rates['fp32']:.2f}x |", flush=True)

    if args.quality_steps:
        for path in (args.data, args.val_data):
            if not Path(path).exists():
                sys.exit(f"{path} not found: the quality part needs the TinyStories slices in "
                         "../shared (or pass --data/--val-data)")
        print(f"\n# quality: default model, {args.quality_steps} steps, same seed; "
              "held-out scored in fp32 on the first 200,000 characters")
        print("| precision | train time | held-out bits/char |")
        print("|---|---:|---:|")
        with tempfile.TemporaryDirectory() as tmp:
            for precision in ("fp32", "bf16"):
                cfg = TrainConfig(data=[args.data], max_chars=1_000_000, max_steps=args.quality_steps,
                                  eval_interval=args.quality_steps, sample_chars=0, plot_loss=False,
                                  threads=args.threads, precision=precision)
                start = time.perf_counter()
                with contextlib.redirect_stderr(io.StringIO()):  # no progress lines
                    run = train(ModelConfig(), cfg, Path(tmp) / precision, log=lambda *a: None)
                spent = time.perf_counter() - start
                model, tokenizer, _ = load(run)
                result = evaluate(model, tokenizer, [args.val_data], max_chars=200_000)
                print(f"| {precision} | {spent:.0f} s | {result['bits_per_char']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
