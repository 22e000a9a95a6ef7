"""What the benchmarks share: where the data is, what machine this is, the timed training step,
worker processes that take turns, an older source tree to compare with, and the fixed-budget
training runs of the quality comparisons.

Every benchmark is a module of this package, run from the repository root with
`.venv/bin/python -m bench.<group>.<name>` (bench/README.md lists them). They import minigpt as
installed (scripts/setup.sh installs this checkout in editable mode), and start their worker
processes with `python_module()`, which points the worker at the source tree to measure.

Nothing here imports minigpt at module level: workers import this module while running an older
source tree, whose minigpt may lack today's names.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SHARED = ROOT.parent / "shared" / "data" / "tinystories"
TRAIN = SHARED / "tinystories-sample-train-v1-first2MiB.txt"
HELD_OUT = SHARED / "tinystories-sample-trainV2-first10000lines.txt"
BEFORE = "2f8ddc4"  # the last commit before the generation engine (#17), the "before" of speed/


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str, options: list[str]):
    """`minigpt serve --checkpoint ... options` in a process of its own on a free loopback port,
    once it answers /healthz: (the process, its base URL). Stop it with terminate()."""
    env = dict(os.environ, PYTHONPATH=str(SRC), HF_HUB_OFFLINE="1")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "minigpt", "serve", "--checkpoint", checkpoint,
                               "--port", str(port), *options],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return server, base
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def python_module(module: str, *args: str, src: Path = SRC, threads: int | None = None) -> list[str]:
    """The command line running `python -m module args` in a fresh process that imports minigpt
    from `src` (this checkout, or an older tree from `before_tree`) and `bench` from this
    checkout, whatever the current directory; offline, and pinned to `threads` if given."""
    env = [f"PYTHONPATH={src}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE=1"]
    if threads:
        env.append(f"OMP_NUM_THREADS={threads}")
    return ["env", *env, sys.executable, "-m", module, *args]


def before_tree(ref: str, tmp: str) -> Path:
    """The `src` folder of a checkout of `ref` (a git worktree under `tmp`), to run an older
    implementation beside this one. Remove it with `remove_tree`."""
    path = Path(tmp) / "before"
    out = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"cannot check out {ref} for the comparison: {out.stderr.strip()}")
    return path / "src"


def remove_tree(src: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src.parent)],
                   capture_output=True)


# --- the timed training step, and worker processes that take turns running it ---------------

def training_step(model, vocab: int, block: int, batch: int, precision: str,
                  optimizer=None) -> Callable[[], None]:
    """A function running forward (under `precision`), backward and an optimizer step on a fixed
    random batch; speed does not depend on the data. Three warm-up steps are run here."""
    import torch

    from minigpt.precision import autocast

    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, block))
    y = torch.randint(0, vocab, (batch, block))
    cpu = torch.device("cpu")

    def step() -> None:
        with autocast(precision, cpu):
            loss = model(x, y)[1]  # MiniGPT and the naive model both return (logits, loss, ...)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    return step


def serve_rounds(step: Callable[[], None], steps: int, ready: str) -> None:
    """Worker side: say `ready`, then time `steps` steps each time the parent writes a line, and
    answer "seconds-per-step minor-page-faults-per-step peak-RSS-MB"."""
    print(f"ready {ready}", flush=True)
    for _ in sys.stdin:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - start) / steps
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{seconds} {(usage.ru_minflt - faults) / steps} {usage.ru_maxrss / 1024}", flush=True)


def take_turns(commands: dict[str, list[str]], rounds: int) -> tuple[dict[str, list[str]],
                                                                      dict[str, list[list[float]]]]:
    """Parent side: start one worker process per system, then run `rounds` rounds in which each
    worker times its steps in turn (only one runs at a time). Returns each worker's `ready` words
    and its rounds as [seconds per step, page faults per step, peak RSS MB]."""
    procs = {name: subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name, cmd in commands.items()}
    ready = {}
    for name, proc in procs.items():
        words = proc.stdout.readline().split()
        if not words or words[0] != "ready":
            raise SystemExit(f"the {name!r} worker did not start (its error is above)")
        ready[name] = words[1:]
    results: dict[str, list[list[float]]] = {name: [] for name in procs}
    for _ in range(rounds):
        for name, proc in procs.items():
            proc.stdin.write("go\n")
            proc.stdin.flush()
            results[name].append([float(v) for v in proc.stdout.readline().split()])
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    return ready, results


# --- fixed-budget training runs: the quality comparisons (quality/) --------------------------

def add_budget_arguments(p: argparse.ArgumentParser) -> None:
    """The options every fixed-budget comparison shares (quality/recipe_sweep, quality/tokenizer_compare)."""
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


def chosen_candidates(args, candidates: dict[str, str]) -> dict[str, str]:
    """The candidates a comparison runs: `candidates` and the --extra ones, narrowed by --only
    (which keeps the --extra ones as well)."""
    candidates = dict(candidates)
    candidates.update(dict(item.split("=", 1) for item in args.extra))
    if args.only:
        wanted = args.only.split(",") + [item.split("=", 1)[0] for item in args.extra]
        unknown = [name for name in wanted if name not in candidates]
        if unknown:
            sys.exit(f"unknown candidate(s) {', '.join(unknown)}: see CANDIDATES in the script, "
                     "or add one with --extra NAME=OPTIONS")
        candidates = {name: candidates[name] for name in wanted}
    return candidates


def train_command(args, options: str, out: Path | str) -> list[str]:
    """The `minigpt train` command line of one candidate: its options after the shared ones (the
    budget, threads, the first 1,000,000 characters of --data, the held-out stories)."""
    return [sys.executable, "-m", "minigpt", "train", "--data", str(args.data), "--max-chars",
            "1000000", "--val-data", f"{args.val_data}@90%:", "--max-time", args.time,
            "--threads", str(args.threads), "--eval-interval", "1000", "--sample-chars", "0",
            "--out", str(out), *shlex.split(options)]


def train_all(args, candidates: dict[str, str]) -> Iterator[tuple[str, str, Path, str]]:
    """Train every candidate (name -> `minigpt train` options) for the same budget on the first
    1,000,000 characters of --data; yield (name, options, run directory, held-out spec) as each
    finishes. Held-out: the last 10% of the stories of --val-data, which no run trains on."""
    from minigpt.data import iter_stories

    for path in (args.data, args.val_data):
        if not Path(path).exists():
            sys.exit(f"{path} not found: this benchmark needs the TinyStories slices in {SHARED} "
                     "(or pass --data/--val-data)")
    candidates = chosen_candidates(args, candidates)
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
            cmd = train_command(args, options, work / name)
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
