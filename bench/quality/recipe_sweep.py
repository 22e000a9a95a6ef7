"""Which training recipe gives the best held-out bits/char for a fixed CPU budget?

Each candidate is a set of `minigpt train` options. Every run trains for the same --max-time on
the first 1,000,000 characters of the V1 TinyStories slice with the same thread count, then is
scored with `minigpt eval` on the held-out stories (the last 10% of the stories of the V2 slice,
`FILE@90%:`, which no run trains on). Runs go `--parallel` at a time, each pinned to its own thread count;
with 2 runs on a 2-core machine they share memory bandwidth, so compare within one sweep.

    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --parallel 2    # every candidate below
    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --only default   # the headline number
    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --only default,adamw --parallel 2  # Muon vs AdamW

Every recipe tried before, with the options it ran with, is in bench/quality/recipes_tried.toml
(its results: docs/performance.md, section 1); `--candidates` adds them, so
`--candidates bench/quality/recipes_tried.toml --only muon-l5` reruns one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from ..core import add_budget_arguments, train_all

# name -> options for `minigpt train` on top of today's defaults: the comparisons README.md and
# docs/performance.md quote. Past experiments live in recipes_tried.toml, not here.
CANDIDATES = {
    "default": "",
    "seed": "--preset seed",
    "adamw": "--preset adamw",
    # a CPU without bf16 instructions (most laptops): Muon vs AdamW in fp32
    "muon-fp32": "--precision fp32",
    "adamw-fp32": "--preset adamw --precision fp32",
}


def read_candidates(path: str) -> dict[str, str]:
    """Candidates from a TOML file: `name = "options"` lines, optionally grouped under [tables]."""
    found = {}
    for key, value in tomllib.loads(Path(path).read_text()).items():
        found.update(value if isinstance(value, dict) else {key: value})
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_budget_arguments(p)
    p.add_argument("--candidates", action="append", default=[], metavar="FILE",
                   help="more candidates from a TOML file, e.g. bench/quality/recipes_tried.toml")
    args = p.parse_args()
    candidates = dict(CANDIDATES)
    for path in args.candidates:
        candidates.update(read_candidates(path))
    results = []
    for name, options, run, held_out in train_all(args, candidates):
        results.append(score(sys.executable, name, options, run, held_out, args.threads))
        print(results[-1]["row"], flush=True)
    print("\n| candidate | options | params | steps | train chars/s | held-out bits/char |")
    print("|---|---|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: r["bpc"]):
        print(r["row"])


def score(python: str, name: str, options: str, run: Path, held_out: str, threads: int) -> dict:
    from minigpt.runlog import read_metrics

    out = subprocess.run([python, "-m", "minigpt", "eval", "--checkpoint", str(run), "--data",
                          held_out, "--json"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    result = json.loads(out.stdout)
    metrics = read_metrics(run)
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


if __name__ == "__main__":
    main()
