"""How the default learning rate, dropout and size were chosen: held-out bits/char after the same
short CPU budget for each setting, run one after another in one process, same data, same threads.

    .venv/bin/python bench/defaults_sweep.py --time 75s --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from core import HELD_OUT, TRAIN, cpu_name  # noqa: E402
from minigpt.checkpoint import latest_state  # noqa: E402
from minigpt import ModelConfig, TrainConfig, evaluate, load, train  # noqa: E402

SETTINGS = {  # name: (model overrides, training overrides)
    "lr 1e-3, dropout 0.1": (dict(dropout=0.1), dict(learning_rate=1e-3)),
    "lr 2e-3, dropout 0.1": (dict(dropout=0.1), dict(learning_rate=2e-3)),
    "lr 1e-3, dropout 0": (dict(dropout=0.0), dict(learning_rate=1e-3)),
    "lr 2e-3, dropout 0 (default)": (dict(dropout=0.0), dict(learning_rate=2e-3)),
    "lr 3e-3, dropout 0": (dict(dropout=0.0), dict(learning_rate=3e-3)),
    "96 x 3 layers, lr 2e-3, dropout 0": (dict(n_embd=96, n_layers=3, dropout=0.0),
                                          dict(learning_rate=2e-3)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(TRAIN))
    p.add_argument("--val-data", default=str(HELD_OUT))
    p.add_argument("--time", default="75s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-chars", type=int, default=100_000)
    args = p.parse_args()
    for path in (args.data, args.val_data):
        if not Path(path).exists():
            sys.exit(f"bench: {path} not found; pass --data/--val-data")
    torch.set_num_threads(args.threads)
    print(f"setup: torch {torch.__version__} | {cpu_name()} | {args.threads} thread(s) | "
          f"{args.time} per setting | train {Path(args.data).name} | held-out {Path(args.val_data).name} "
          f"(first {args.eval_chars:,} chars)")
    print(f"{'setting':36} {'params':>9} {'steps':>6} {'bits/char':>9}")
    for name, (model_kw, train_kw) in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(data=[args.data], max_time=args.time, threads=args.threads,
                              eval_interval=10**9, sample_chars=0, device="cpu", **train_kw)
            run = train(ModelConfig(**model_kw), cfg, Path(tmp) / "run", log=lambda *a: None)
            steps = latest_state(run)["step"]
            model, tokenizer, _ = load(run, device="cpu")
            held = evaluate(model, tokenizer, args.val_data, max_chars=args.eval_chars)
        print(f"{name:36} {model.num_parameters():>9,} {steps:>6} {held['bits_per_char']:>9.3f}",
              flush=True)


if __name__ == "__main__":
    main()
