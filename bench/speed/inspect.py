"""The explainer's answer time: GET /api/inspect beside the old look inside, GET /api/attention.png.

    .venv/bin/python -m bench.speed.inspect                         # the bundled model, ~1 minute
    .venv/bin/python -m bench.speed.inspect --checkpoint runs/first --requests 50

One `minigpt serve --threads N` on loopback; one client asks, in turns, for the same 60-character
prompt (the README's target) in four ways: /api/inspect with every layer (the API's default),
/api/inspect with one layer (what the page asks for as you type), /api/inspect for a prompt as long
as the model's window, and /api/attention.png (matplotlib, every layer and head). Reported per
request: median and p95 wall time as the client sees it (the answer read to its end), its size,
and how many times faster than the PNG the median is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request

from ..core import cpu_name, start_server

PROMPT = "Once upon a time, there was a little girl named Lily. She li"
assert len(PROMPT) == 60


def timed(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        size = len(answer.read())
        if answer.status != 200:
            raise SystemExit(f"{url}: HTTP {answer.status}")
    return time.perf_counter() - start, size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="bundled")
    p.add_argument("--requests", type=int, default=30, help="requests of each kind (after 3 to warm up)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    args = p.parse_args()
    server, base = start_server(args.checkpoint, ["--threads", str(args.threads)])
    try:
        facts = json.load(urllib.request.urlopen(base + "/api/model"))
        long = (PROMPT * 20)[: facts["block_size"] - 1]
        kinds = {  # the PNG's label is `before` below
            "/api/inspect (every layer)": {"path": "/api/inspect", "prompt": PROMPT},
            "/api/inspect?layer=0 (as the page asks)": {"path": "/api/inspect", "prompt": PROMPT, "layer": 0},
            f"/api/inspect?layer=0, {len(long)} characters": {"path": "/api/inspect", "prompt": long, "layer": 0},
            "/api/attention.png (before: every layer)": {"path": "/api/attention.png", "prompt": PROMPT},
        }
        urls = {label: base + q.pop("path") + "?" + urllib.parse.urlencode(q) for label, q in kinds.items()}
        for url in urls.values():
            for _ in range(3):
                timed(url)
        times: dict[str, list[float]] = {label: [] for label in urls}
        sizes: dict[str, int] = {}
        for _ in range(args.requests):  # in turns, so a slow moment of the machine hits all alike
            for label, url in urls.items():
                seconds, sizes[label] = timed(url)
                times[label].append(seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"setup: {cpu_name()} | {args.checkpoint} model, {facts['parameters']:,} parameters, "
          f"{facts['n_layers']} layers x {facts['num_heads']} heads, block_size {facts['block_size']} | "
          f"minigpt serve --threads {args.threads} | one client on loopback, {args.requests} requests "
          f"of each kind in turns | prompt of {len(PROMPT)} characters")
    before = "/api/attention.png (before: every layer)"
    png = statistics.median(times[before])
    print("| request | median | p95 | answer size | vs the PNG |")
    print("|---|---:|---:|---:|---:|")
    for label, samples in times.items():
        samples.sort()
        median, p95 = statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]
        ratio = "the baseline" if label == before else f"{png / median:.1f}x faster"
        print(f"| {label} | {median * 1000:,.0f} ms | {p95 * 1000:,.0f} ms | {sizes[label] / 1000:,.0f} kB | "
              f"{ratio} |")

if __name__ == "__main__":
    main()
