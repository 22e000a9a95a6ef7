"""Fault injection: SIGKILL a training run at random moments, resume it each time, and compare the
result with a run that was never interrupted (same seed, same data, same budget).

    .venv/bin/python -m bench.robustness.fault_injection               # 20 kills, 1 thread
    .venv/bin/python -m bench.robustness.fault_injection --kills 5 --data some.txt

A resume succeeds when the restarted process continues from a checkpoint (or from step 0 if the
kill came before the first one) and training goes on. Because the data order and dropout RNG are
restored too, the final weights should be bit-identical to the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minigpt.checkpoint import latest_state, read_tensors, tensor_digest

from ..core import SRC, TRAIN

MODEL = ["--block-size", "64", "--n-embd", "64", "--num-heads", "4", "--n-layers", "2",
         "--dropout", "0.1", "--batch-size", "16"]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "minigpt", "train", *args]


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC), HF_HUB_OFFLINE="1")
    return subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(TRAIN))
    p.add_argument("--max-chars", default="300000")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--max-steps", default="4000")
    p.add_argument("--eval-interval", default="25")
    p.add_argument("--threads", default="1")
    p.add_argument("--seed", type=int, default=0, help="seed for the kill moments")
    args = p.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"bench: {args.data} not found; pass --data")
    rng = random.Random(args.seed)
    common = ["--data", args.data, "--max-chars", args.max_chars, "--max-steps", args.max_steps,
              "--eval-interval", args.eval_interval, "--threads", args.threads, "--sample-chars", "0",
              *MODEL]
    print(f"setup: {args.kills} SIGKILLs at random moments | max_steps {args.max_steps} | checkpoint "
          f"every {args.eval_interval} steps | {args.threads} thread(s) | data {Path(args.data).name}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        subprocess.run(command(*common, "--out", str(tmp / "straight")), check=True,
                       capture_output=True, env=dict(os.environ, PYTHONPATH=str(SRC)))
        straight_s = time.monotonic() - t0
        run = tmp / "killed"
        proc = start(command(*common, "--out", str(run)), tmp / "log-0.txt")
        successes, from_newest = 0, 0
        for kill in range(1, args.kills + 1):
            while not (run / "config.json").exists():  # the run exists once its data is ready
                time.sleep(0.05)
            time.sleep(rng.uniform(1.5, 5.0))
            if proc.poll() is not None:
                print(f"kill {kill}: training had already finished; stopping the experiment early")
                break
            step_at_kill = latest_state(run)["step"] if (run / "checkpoints").exists() else 0
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log = tmp / f"log-{kill}.txt"
            proc = start(command("--resume", str(run)), log)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = log.read_text()
                if "resuming at step" in text or "starting the run again" in text or "error" in text:
                    break
                time.sleep(0.05)
            text = log.read_text()
            ok = ("resuming at step" in text or "starting the run again" in text) and "error" not in text
            successes += ok
            resumed = int(text.split("resuming at step ")[1].split()[0]) if "resuming at step" in text else 0
            from_newest += resumed >= step_at_kill  # a checkpoint may land just before the kill
            print(f"kill {kill:2d}: newest checkpoint step {step_at_kill:4d} -> resumed at step "
                  f"{resumed:4d} {'ok' if ok else 'FAILED: ' + text.strip().splitlines()[-1]}", flush=True)
        proc.wait()
        straight = latest_state(tmp / "straight")
        killed = latest_state(run)
        same = (tensor_digest(read_tensors(tmp / "straight" / "model.safetensors"))
                == tensor_digest(read_tensors(run / "model.safetensors")))
    print(f"\nresumes: {successes}/{args.kills} successful (final process exit code {proc.returncode})")
    print(f"resumed from the newest checkpoint on disk at the kill: {from_newest}/{args.kills} "
          f"(so at most {args.eval_interval} steps of work were lost per kill)")
    print(f"final step: uninterrupted {straight['step']}, killed+resumed {killed['step']}")
    print(f"held-out loss at the end: uninterrupted {straight['val_nats']:.4f} nats/char, "
          f"killed+resumed {killed['val_nats']:.4f} nats/char")
    print(f"final weights bit-identical: {same}   (uninterrupted run took {straight_s:.0f} s)")


if __name__ == "__main__":
    main()
