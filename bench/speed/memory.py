"""Peak memory of a training run on a 2 MB corpus vs a 200 MB one.

Data preparation streams the text and training reads token ids through a memory map, so the
corpus size should not show in the process's peak resident memory. This builds both corpora in a
temporary directory (the 200 MB one by repeating the TinyStories slice; nothing is added to the
repository), runs the same `minigpt train` command on each in a fresh process, and reports each
process's peak resident set size (ru_maxrss), data preparation included.

    .venv/bin/python -m bench.speed.memory                 # 2 MB vs 200 MB, 200 steps, 1 thread
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from ..core import TRAIN, cpu_name

# Runs the command in a child and prints the child's peak RSS in KiB (Linux ru_maxrss unit).
MEASURE = ("import json, resource, subprocess, sys, time; t = time.time(); "
           "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
           "print(json.dumps({'code': code, 'seconds': time.time() - t, "
           "'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def build_corpus(path: Path, source: Path, megabytes: float) -> int:
    """Write whole copies of `source`'s complete stories until the file holds >= `megabytes` MB."""
    text = source.read_bytes()
    text = text[: text.rindex(b"<|endoftext|>") + len(b"<|endoftext|>")] + b"\n"  # whole stories
    with open(path, "wb") as f:
        for _ in range(max(1, math.ceil(megabytes * 1_000_000 / len(text)))):
            f.write(text)
    return path.stat().st_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small-mb", type=float, default=2)
    p.add_argument("--large-mb", type=float, default=200)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--source", default=str(TRAIN), help="text repeated to build the corpora")
    args = p.parse_args()
    if not Path(args.source).exists():
        sys.exit(f"{args.source} not found: this benchmark needs the TinyStories slice in ../shared "
                 "(or pass --source FILE)")
    print(f"# {cpu_name()} | {args.threads} thread(s) | default model, {args.steps} steps, "
          f"eval every 100 | corpora built from {Path(args.source).name}")
    print("| corpus | train tokens | wall time (prep + train) | peak RSS |")
    print("|---:|---:|---:|---:|")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in (args.small_mb, args.large_mb):
            corpus = Path(tmp) / f"corpus-{mb:g}MB.txt"
            size = build_corpus(corpus, Path(args.source), mb)
            run = Path(tmp) / f"run-{mb:g}"
            cmd = [sys.executable, "-m", "minigpt", "train", "--data", str(corpus),
                   "--max-steps", str(args.steps), "--eval-interval", "100", "--sample-chars", "0",
                   "--threads", str(args.threads), "--out", str(run)]
            out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True,
                                 text=True, check=True)
            result = json.loads(out.stdout)
            if result["code"]:
                sys.exit(f"training on {corpus.name} failed with exit code {result['code']}")
            tokens = json.loads((run / "data" / "meta.json").read_text())["train_tokens"]
            peaks.append(result["maxrss_kib"] / 1024)
            print(f"| {size / 1e6:,.1f} MB | {tokens:,} | {result['seconds']:.0f} s | "
                  f"{peaks[-1]:,.0f} MiB |", flush=True)
            corpus.unlink()
    print(f"\nlarge / small peak RSS: {peaks[1] / peaks[0]:.3f} (goal: within 10%, <= 1.10)")


if __name__ == "__main__":
    main()
