"""Benchmarks: every figure in README.md and docs/performance.md comes from a module here.

Run one from the repository root as a module, e.g. `.venv/bin/python -m bench.speed.generation
--threads 1`; `--help` on any of them says what it measures and how. bench/README.md has the
table of them all. The groups:

- `speed/`: how fast training and generation run, and what they cost in memory and threads.
- `quality/`: held-out bits/char for a fixed CPU budget (recipes, tokenizers).
- `robustness/`: fault drills (kill training, resume, compare).
- `end_to_end`: one run of each step a user takes (train, evaluate, generate).

`core` is what they share; nothing else here is imported by more than one benchmark.
"""
