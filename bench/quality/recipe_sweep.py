"""Which training recipe gives the best held-out bits/char for a fixed CPU budget?

Each candidate is a set of `minigpt train` options. Every run trains for the same --max-time on
the first 1,000,000 characters of the V1 TinyStories slice with the same thread count, then is
scored with `minigpt eval` on the held-out stories (the last 10% of the stories of the V2 slice,
`FILE@90%:`, which no run trains on; every character scored once, with as much context as the
model allows: evaluate.evaluate_ids). Runs go `--parallel` at a time, each pinned to its own
thread count; with 2 runs on a 2-core machine they share memory bandwidth, so compare within one
sweep.

    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --parallel 2    # every candidate below
    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --only default   # the headline number
    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --only default,classic --parallel 2  # the ladder vs the seed's blocks
    .venv/bin/python -m bench.quality.recipe_sweep --time 10m --only classic,adamw --parallel 2  # Muon vs AdamW

Every recipe tried before, with the options it ran with, is in bench/quality/recipes_tried.toml
(its results: docs/performance.md, section 1); `--candidates` adds them, so
`--candidates bench/quality/recipes_tried.toml --only muon-l5` reruns one.

Issue 20's architecture ladder (docs/ladder.md) is bench/quality/ladder.toml: one idea per row on
top of today's defaults. `--dry-run` checks every row with minigpt's own option parser and config
checks, prints the runs it would make and whether the data is there, and trains nothing:

    .venv/bin/python -m bench.quality.recipe_sweep --candidates bench/quality/ladder.toml --skip-builtin --dry-run
    .venv/bin/python -m bench.quality.recipe_sweep --candidates bench/quality/ladder.toml --skip-builtin --time 10m --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from ..core import add_budget_arguments, chosen_candidates, train_all, train_command

# name -> options for `minigpt train` on top of today's defaults: the comparisons README.md and
# docs/performance.md quote. Past experiments live in recipes_tried.toml, not here.
CANDIDATES = {
    "default": "",
    "classic": "--preset classic",  # the seed's architecture: the default until 2026-12-02
    "seed": "--preset seed",
    "adamw": "--preset adamw",
    # a CPU without bf16 instructions (most laptops): the default, and Muon vs AdamW, in fp32
    "fp32": "--precision fp32",
    "muon-fp32": "--preset classic --precision fp32",
    "adamw-fp32": "--preset adamw --precision fp32",
}


def read_candidates(path: str) -> dict[str, str]:
    """Candidates from a TOML file: `name = "options"` lines, optionally grouped under [tables]."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        sys.exit(f"--candidates {path}: cannot read it as TOML ({exc})")
    found = {}
    for key, value in raw.items():
        found.update(value if isinstance(value, dict) else {key: value})
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_budget_arguments(p)
    p.add_argument("--candidates", action="append", default=[], metavar="FILE",
                   help="more candidates from a TOML file, e.g. bench/quality/recipes_tried.toml")
    p.add_argument("--skip-builtin", action="store_true",
                   help="run only the candidates of the --candidates files, not CANDIDATES above")
    p.add_argument("--dry-run", action="store_true",
                   help="check each candidate's options with minigpt's parser and config checks, "
                   "print the planned runs and whether the data files exist; train nothing")
    args = p.parse_args()
    candidates = {} if args.skip_builtin else dict(CANDIDATES)
    for path in args.candidates:
        candidates.update(read_candidates(path))
    if not candidates:
        sys.exit("no candidates: --skip-builtin needs at least one --candidates FILE")
    if args.dry_run:
        sys.exit(dry_run(args, candidates))
    results = []
    for name, options, run, held_out in train_all(args, candidates):
        results.append(score(sys.executable, name, options, run, held_out, args.threads))
        print(results[-1]["row"], flush=True)
    print("\n| candidate | options | params | steps | train chars/s | held-out bits/char |")
    print("|---|---|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: r["bpc"]):
        print(r["row"])


def dry_run(args, candidates: dict[str, str]) -> int:
    """Print the runs a sweep would make, each checked as `minigpt train` would check it before
    training (its parser, then config.resolve); 1 if any is refused. Nothing is read or trained."""
    import contextlib
    import io
    import shlex

    from minigpt.config import ModelConfig, TrainConfig, resolve
    from minigpt.errors import UserError
    from minigpt.options import build_parser, picked

    for path, what in ((args.data, "train"), (args.val_data, "held-out (its last 10% of stories)")):
        there = "found" if Path(path).exists() else "MISSING: a real sweep stops here; see bench/README.md"
        print(f"# {what}: {path} ({there})")
    print(f"# budget {args.time} per run, {args.threads} thread(s), {args.parallel} at once")
    chosen = chosen_candidates(args, candidates)
    refused = 0
    for name, options in chosen.items():
        cmd = train_command(args, options, Path(args.keep or "RUNS") / name)
        problem = io.StringIO()
        try:
            with contextlib.redirect_stderr(problem):
                parsed = build_parser().parse_args(cmd[3:])  # what follows `python -m minigpt`
            resolve(parsed.preset, parsed.config, picked(parsed, ModelConfig, TrainConfig))
        except SystemExit:  # argparse's one-line error, e.g. an option that does not exist yet
            refused += 1
            print(f"{name}: REFUSED: {problem.getvalue().strip()}")
        except UserError as exc:
            refused += 1
            print(f"{name}: REFUSED: {exc}")
        else:
            print(f"{name}: ok: {shlex.join(['minigpt', *cmd[3:]])}")
    print(f"# {len(chosen) - refused} of {len(chosen)} candidate(s) would run")
    return 1 if refused else 0


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
