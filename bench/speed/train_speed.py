"""Training step speed at the seed's shape: the naive seed-style model vs ours, side by side.

Shape: 4 layers, n_embd 128, 4 heads, block 128, batch 32 (the seed's recipe). Systems:
  naive        bench/speed/naive_seed.py: per-head modules, T x T masked attention, post-LN, Adam, fp32
  ours fp32    minigpt's model: one fused QKV projection, fused attention kernel, AdamW, fp32
  ours auto    the same with `--precision auto` (bf16 autocast on CPUs with bf16 instructions)
  ours muon    `ours auto` with the default optimizer, Muon for the blocks' matrices (optim.py):
               more work per step than AdamW, but each step learns more (docs/performance.md)
Each step is forward + backward + optimizer step on random ids (speed does not depend on the
data). The systems take turns for `--rounds` rounds; each one's best round counts.

MFU (model FLOPs utilisation) = model FLOPs per second / this machine's matmul peak, measured
here on a 1024 x 1024 matrix product in fp32 and in bf16 with the same thread count. Model FLOPs
per character = 6 x (weights in matrix products) + 12 x layers x block x n_embd (attention),
the usual count (PaLM, appendix B); causal masking's skipped half is counted as work.

    .venv/bin/python -m bench.speed.train_speed --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from minigpt import MiniGPT, ModelConfig, TrainConfig
from minigpt.precision import cpu_bf16_features, resolve_precision
from minigpt.train import make_optimizer

from ..core import cpu_name, training_step
from .naive_seed import NaiveGPT

VOCAB = 71


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n matrix product, best of a few."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def model_flops_per_char(cfg: ModelConfig, model: torch.nn.Module) -> float:
    matrix_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6 * matrix_weights + 12 * cfg.n_layers * cfg.block_size * cfg.n_embd


def make_step(system: str, cfg: ModelConfig, batch: int):
    torch.manual_seed(0)
    if system == "naive":
        model = NaiveGPT(VOCAB, cfg.block_size, cfg.n_embd, cfg.num_heads, cfg.n_layers)
        optimizer, precision = torch.optim.Adam(model.parameters(), lr=3e-4), "fp32"
    else:
        model = MiniGPT(cfg)
        precision = ("fp32" if system == "ours fp32"
                     else resolve_precision("auto", torch.device("cpu"), cfg.n_embd)[0])
        optimizer = (make_optimizer(model, TrainConfig(optimizer="muon", precision=precision))
                     if system == "ours muon" else torch.optim.AdamW(model.parameters(), lr=3e-4))
    return training_step(model, VOCAB, cfg.block_size, batch, precision, optimizer), model, precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(vocab_size=VOCAB, n_embd=128, num_heads=4, n_layers=4, block_size=128)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"# {cpu_name()} | bf16 instructions: {'+'.join(cpu_bf16_features()) or 'none'} | "
          f"torch {torch.__version__} | {args.threads} thread(s)")
    print(f"# shape: {cfg.n_layers} layers, n_embd {cfg.n_embd}, {cfg.num_heads} heads, block "
          f"{cfg.block_size}, batch {args.batch_size}; best of {args.rounds} rounds x {args.steps} steps")
    print(f"# measured matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    systems = {name: make_step(name, cfg, args.batch_size) for name in ("naive", "ours fp32", "ours auto",
                                                                "ours muon")}
    best = {name: float("inf") for name in systems}
    for _ in range(args.rounds):
        for name, (step, _, _) in systems.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / args.steps)
    chars = args.batch_size * cfg.block_size
    print("| system | precision | params | ms/step | chars/s | vs naive | MFU (own precision) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (_, model, precision) in systems.items():
        speed = chars / best[name]
        flops = model_flops_per_char(cfg, model) * speed
        params = sum(t.numel() for t in model.parameters())
        print(f"| {name} | {precision} | {params:,} | {best[name] * 1e3:.0f} | {speed:,.0f} | "
              f"{best['naive'] / best[name]:.2f}x | {flops / peaks[precision]:.0%} |")


if __name__ == "__main__":
    main()
