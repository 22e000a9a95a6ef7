"""Throughput with 1 process vs N processes (torchrun, DDP, gloo), 1 thread each, same global batch.

    .venv/bin/python -m bench.speed.ddp_scaling                 # 1 vs 2 processes, default model
    .venv/bin/python -m bench.speed.ddp_scaling --steps 300 --batch-size 64

Both runs train the same number of steps on the same data with the same global batch, so they do
the same arithmetic; chars/s is (steps x batch x block_size) / training seconds (checkpoints and
evaluation excluded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from minigpt.checkpoint import latest_state

from ..core import SRC, TRAIN, cpu_name


def run(nproc: int, out: Path, args) -> float:
    train = ["-m", "minigpt", "train", "--data", args.data, "--max-chars", "500000", "--out", str(out),
             "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--threads", "1",
             "--eval-interval", str(args.steps), "--sample-chars", "0"]
    launcher = ([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                 "--standalone"] if nproc > 1 else [sys.executable])
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    subprocess.run(launcher + train, check=True, capture_output=True, env=env)
    state = latest_state(out)
    return state["step"] * args.batch_size * 128 / state["elapsed_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(TRAIN))
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=32, help="global batch (default model, block 128)")
    p.add_argument("--nproc", type=int, default=2)
    args = p.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"bench: {args.data} not found; pass --data")
    print(f"setup: {cpu_name()} | default model, block 128 | global batch {args.batch_size} | "
          f"{args.steps} steps | 1 thread per process | gloo on loopback")
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, Path(tmp) / "one", args)
        many = run(args.nproc, Path(tmp) / "many", args)
    print(f"1 process:           {one:,.0f} chars/s")
    print(f"{args.nproc} processes (DDP):   {many:,.0f} chars/s   speed-up x{many / one:.2f}")


if __name__ == "__main__":
    main()
