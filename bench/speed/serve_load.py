"""Load check for `minigpt serve`: 1, 4, 16 and 64 concurrent clients, against the same server
limited to one story at a time.

    .venv/bin/python -m bench.speed.serve_load                      # the bundled model, ~6 minutes
    .venv/bin/python -m bench.speed.serve_load --checkpoint runs/first --clients 1,16

Two servers, one after the other, on loopback: `--max-batch 16` (the engine writes up to 16
stories in one batch, the default) and `--max-batch 1 --max-waiting 64` (one story at a time,
the others queue). Each client posts /api/generate (prompt "Once upon a time", a seed of its
own, --max-new-chars) again as soon as its answer arrives. Reported per run: errors (any answer
but 200, 503 "busy" included), aggregate generated characters per second, and p50 / p95
latency per request.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request

from ..core import cpu_name, start_server


def load(base: str, clients: int, requests: int, max_new_chars: int) -> dict:
    latencies, errors, chars = [], [], []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = json.dumps({"prompt": "Once upon a time", "seed": i,
                               "max_new_chars": max_new_chars}).encode()
            request = urllib.request.Request(base + "/api/generate", data=body,
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            try:
                answer = json.load(urllib.request.urlopen(request, timeout=120))
                with lock:
                    latencies.append(time.perf_counter() - start)
                    chars.append(answer["chars"])
            except urllib.error.HTTPError as exc:
                with lock:
                    errors.append(f"HTTP {exc.code}")
            except Exception as exc:  # any other failure counts as an error too
                with lock:
                    errors.append(repr(exc))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
    return {"errors": errors, "chars_per_s": sum(chars) / wall, "p50": pct(0.5), "p95": pct(0.95),
            "requests": requests, "answered": len(latencies), "wall": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="bundled")
    p.add_argument("--clients", default="1,4,16,64")
    p.add_argument("--requests", default="1:40,4:100,16:500,64:500",
                   help="requests per run, by number of clients (clients:requests,...)")
    p.add_argument("--max-new-chars", type=int, default=200)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--server-options", default="", help="more options for the engine server")
    args = p.parse_args()
    per_run = {int(k): int(v) for k, v in (part.split(":") for part in args.requests.split(","))}
    counts = [int(c) for c in args.clients.split(",")]
    servers = {f"engine, --max-batch {args.max_batch}": ["--max-batch", str(args.max_batch), *args.server_options.split()],
               "one story at a time, --max-batch 1 --max-waiting 64": ["--max-batch", "1",
                                                                       "--max-waiting", "64"]}
    results: dict[str, dict[int, dict]] = {}
    facts = None
    for label, options in servers.items():
        server, base = start_server(args.checkpoint, options)
        try:
            facts = json.load(urllib.request.urlopen(base + "/api/model"))
            load(base, 2, 4, 20)  # warm up
            results[label] = {c: load(base, c, per_run.get(c, 8 * c), args.max_new_chars) for c in counts}
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"setup: {cpu_name()} | {args.checkpoint} model, {facts['parameters']:,} parameters | "
          f"{facts.get('threads')} torch thread(s) in the server | POST /api/generate, max_new_chars "
          f"{args.max_new_chars}, temperature 0.8 | clients and server on this machine (loopback)")
    for label, runs in results.items():
        one = runs.get(1)
        print(f"\n{label}")
        print("| clients | requests | errors | generated chars/s | vs 1 client | p50 latency | p95 latency |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for c, r in runs.items():
            ratio = f"{r['chars_per_s'] / one['chars_per_s']:.2f}x" if one else "-"
            kinds = sorted(set(r["errors"]))
            errors = f"{len(r['errors'])}" + (f" ({', '.join(kinds[:2])})" if kinds else "")
            print(f"| {c} | {r['requests']} | {errors} | {r['chars_per_s']:,.0f} | {ratio} | "
                  f"{r['p50'] * 1000:,.0f} ms | {r['p95'] * 1000:,.0f} ms |", flush=True)


if __name__ == "__main__":
    main()
