"""Load check for `minigpt serve`: 200 requests from 20 concurrent clients on loopback.

    .venv/bin/python bench/serve_load.py                     # trains a small model first (~20 s)
    .venv/bin/python bench/serve_load.py --checkpoint runs/first --requests 400 --clients 40

Reports errors (any answer but 200), throughput, and p50 / p95 latency per request.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from core import cpu_name  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="run directory (default: train a small model first)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--max-new-chars", type=int, default=100)
    p.add_argument("--max-concurrent", type=int, default=4)
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.checkpoint
        if run is None:
            run = str(Path(tmp) / "run")
            subprocess.run([sys.executable, "-m", "minigpt", "train", "--data", "bundled", "--out", run,
                            "--max-steps", "200", "--n-layers", "2", "--n-embd", "64", "--block-size", "64",
                            "--eval-interval", "200", "--sample-chars", "0"],
                           check=True, capture_output=True, env=env)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "minigpt", "serve", "--checkpoint", run,
                                   "--port", str(port), "--max-concurrent", str(args.max_concurrent)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            facts = json.load(urllib.request.urlopen(base + "/api/model"))
            latencies, errors, chars = [], [], []
            lock = threading.Lock()
            counter = iter(range(args.requests))

            def client():
                while True:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    body = json.dumps({"prompt": "Once upon a time", "seed": i,
                                       "max_new_chars": args.max_new_chars}).encode()
                    request = urllib.request.Request(base + "/api/generate", data=body,
                                                     headers={"Content-Type": "application/json"})
                    start = time.perf_counter()
                    try:
                        answer = json.load(urllib.request.urlopen(request, timeout=120))
                        with lock:
                            latencies.append(time.perf_counter() - start)
                            chars.append(answer["chars"])
                    except Exception as exc:  # any failure counts as an error
                        with lock:
                            errors.append(repr(exc))

            started = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
    print(f"setup: {cpu_name()} | model {facts['parameters']:,} parameters | {args.requests} requests, "
          f"{args.clients} concurrent clients, max_new_chars {args.max_new_chars}, server "
          f"--max-concurrent {args.max_concurrent}, loopback")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"throughput: {len(latencies) / wall:.1f} requests/s, {sum(chars) / wall:,.0f} generated chars/s "
          f"({wall:.1f} s in all)")
    print(f"latency: p50 {pct(0.50) * 1000:.0f} ms, p95 {pct(0.95) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
