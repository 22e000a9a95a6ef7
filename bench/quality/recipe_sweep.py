"""Which training recipe gives the best held-out bits/char for a fixed CPU budget?

Each candidate is a set of `minigpt train` options. Every run trains for the same --max-time on
the first 1,000,000 characters of the V1 TinyStories slice with the same thread count, then is
scored with `minigpt eval` on the held-out stories (the last 10% of the stories of the V2 slice,
`FILE@90%:`, which no run trains on). Runs go `--parallel` at a time, each pinned to its own thread count;
with 2 runs on a 2-core machine they share memory bandwidth, so compare within one sweep.

    .venv/bin/python bench/recipe_sweep.py --time 10m --parallel 2    # every candidate below
    .venv/bin/python bench/recipe_sweep.py --time 10m --only default   # the headline number
    .venv/bin/python bench/recipe_sweep.py --time 10m --only default,adamw --parallel 2  # Muon vs AdamW
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from core import HELD_OUT, TRAIN, cpu_name  # noqa: E402
from minigpt.data import iter_stories  # noqa: E402

# name -> options for `minigpt train` on top of today's defaults. The sweep in docs/performance.md
# ran these. Rows measured when AdamW was the default spell it out (ADAMW), and "old" rows ran
# against the defaults before that (weight decay 0.1, cosine to 10%), so every row can be
# reproduced as it ran.
ADAMW = "--optimizer adamw --learning-rate 2e-3"
OLD = f"{ADAMW} --weight-decay 0.1 --min-lr-ratio 0.1"
CANDIDATES = {
    "default": "",
    "seed": "--preset seed",
    "adamw": "--preset adamw",
    # Muon (session 4)
    "muon-lr2e-3": "--learning-rate 2e-3",
    "muon-lr3e-3": "--learning-rate 3e-3",
    "muon-lr4.5e-3": "--learning-rate 4.5e-3",
    "muon-lr6e-3": "--learning-rate 6e-3",
    "muon-b32": "--learning-rate 2e-3 --batch-size 32",
    "muon-block64": "--learning-rate 2e-3 --block-size 64 --batch-size 32",
    "muon-lr3e-3-wd1": "--learning-rate 3e-3 --weight-decay 1.0",
    "muon-lr4.5e-3-wd0.25": "--learning-rate 4.5e-3 --weight-decay 0.25",
    "muon-l5": "--learning-rate 4.5e-3 --n-layers 5",
    "muon-c160": "--learning-rate 4.5e-3 --n-embd 160 --num-heads 5",
    # fp32, as on a CPU without bf16 instructions (session 5)
    "muon-fp32": "--precision fp32",
    "adamw-fp32": "--preset adamw --precision fp32",
    # AdamW (sessions 1-4)
    "adamw-b8": f"{ADAMW} --batch-size 8",
    "adamw-nobias": f"{ADAMW} --no-bias",
    "wd0.5-cos10": f"{ADAMW} --min-lr-ratio 0.1",
    "wd1.0-cos10": f"{ADAMW} --weight-decay 1.0 --min-lr-ratio 0.1",
    "block64": f"{ADAMW} --block-size 64 --batch-size 32",
    "ff3": f"{ADAMW} --ff-hidden-mult 3",
    "block64-ff3": f"{ADAMW} --block-size 64 --batch-size 32 --ff-hidden-mult 3",
    "old-default": OLD,
    "block64-old": f"--block-size 64 --batch-size 32 {OLD}",
    "lr3e-3-old": f"{OLD} --learning-rate 3e-3",
    "l6-old": f"--n-layers 6 {OLD}",
    "c96-old": f"--n-embd 96 --num-heads 4 {OLD}",
    "c192-old": f"--n-embd 192 --num-heads 6 {OLD}",
    "dropout0.1-old": f"--dropout 0.1 {OLD}",
    "resid-dropout0.1-old": f"--dropout 0.1 --attn-dropout 0 {OLD}",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options every fixed-budget comparison shares (this sweep, bench/tokenizers.py)."""
    p.add_argument("--time", default="10m", help="training budget per run")
    p.add_argument("--threads", type=int, default=1, help="threads per run")
    p.add_argument("--parallel", type=int, default=1, help="runs at once")
    p.add_argument("--only", help="comma-separated candidate names (default: all)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=OPTIONS",
                   help="another candidate, e.g. 'wide=--n-embd 256 --num-heads 8'")
    p.add_argument("--data", default=str(TRAIN))
    p.add_argument("--val-data", default=str(HELD_OUT))
    p.add_argument("--keep", help="keep the run directories here; runs that finished there before "
                   "are scored again, not retrained")


def train_all(args, candidates: dict[str, str]):
    """Train every candidate for the same budget; yield (name, options, run directory, held-out
    spec) as each finishes. Held-out: the last 10% of the stories of --val-data."""
    for path in (args.data, args.val_data):
        if not Path(path).exists():
            sys.exit(f"{path} not found: this benchmark needs the TinyStories slices in ../shared "
                     "(or pass --data/--val-data)")
    candidates = dict(candidates)
    candidates.update(dict(item.split("=", 1) for item in args.extra))
    if args.only:  # --extra candidates are kept as well
        wanted = args.only.split(",") + [item.split("=", 1)[0] for item in args.extra]
        unknown = [name for name in wanted if name not in candidates]
        if unknown:
            sys.exit(f"unknown candidate(s) {', '.join(unknown)}: see CANDIDATES in this script, "
                     "or add one with --extra NAME=OPTIONS")
        candidates = {name: candidates[name] for name in wanted}
    work = Path(args.keep or tempfile.mkdtemp(prefix="sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    held_out = f"{args.val_data}@90%:"
    n_stories = sum(1 for _ in iter_stories(held_out))
    print(f"# {cpu_name()} | {args.threads} thread(s) per run, {args.parallel} run(s) at once | "
          f"budget {args.time} | train: first 1,000,000 chars of {Path(args.data).name} | "
          f"held-out: last {n_stories} stories of {Path(args.val_data).name} | runs in {work}",
          flush=True)
    queue = list(candidates.items())
    running: list[tuple[str, str, subprocess.Popen]] = []
    while queue or running:
        while queue and len(running) < args.parallel:
            name, options = queue.pop(0)
            done = work / f"{name}.log"
            if done.exists() and "saved run:" in done.read_text(errors="replace"):
                print(f"{name}: reusing the finished run in {work / name}", flush=True)
                yield name, options, work / name, held_out
                continue
            cmd = [sys.executable, "-m", "minigpt", "train", "--data", args.data, "--max-chars",
                   "1000000", "--val-data", held_out, "--max-time", args.time, "--threads",
                   str(args.threads), "--eval-interval", "1000", "--sample-chars", "0",
                   "--out", str(work / name), *shlex.split(options)]
            log = open(work / f"{name}.log", "w")
            running.append((name, options, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(2)
        for item in list(running):
            name, options, proc = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if proc.returncode:
                print(f"{name}: training failed (exit {proc.returncode}), see {work / name}.log")
                continue
            yield name, options, work / name, held_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args()
    results = []
    for name, options, run, held_out in train_all(args, CANDIDATES):
        results.append(score(sys.executable, name, options, run, held_out, args.threads))
        print(results[-1]["row"], flush=True)
    print("\n| candidate | options | params | steps | train chars/s | held-out bits/char |")
    print("|---|---|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: r["bpc"]):
        print(r["row"])


def score(python: str, name: str, options: str, run: Path, held_out: str, threads: int) -> dict:
    out = subprocess.run([python, "-m", "minigpt", "eval", "--checkpoint", str(run), "--data",
                          held_out, "--json"], capture_output=True, text=True, check=True,
                         env={"OMP_NUM_THREADS": str(threads), **_env()})
    result = json.loads(out.stdout)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    config = json.loads((run / "config.json").read_text())
    last = metrics[-1]
    chars = sum(m["chars_per_s"] for m in metrics) / len(metrics)
    params = config.get("parameters") or _params(run)
    row = (f"| {name} | `{options or '(defaults)'}` | {params:,} | {last['step']:,} | {chars:,.0f} | "
           f"{result['bits_per_char']:.3f} |")
    return {"name": name, "bpc": result["bits_per_char"], "row": row}


def _params(run: Path) -> int:
    from minigpt import load
    model, _, _ = load(run, device="cpu")
    return model.num_parameters()


def _env() -> dict:
    import os
    return dict(os.environ)


if __name__ == "__main__":
    main()
