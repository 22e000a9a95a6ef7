"""End to end: train for a fixed wall-clock time, then measure what a user would notice.

Prints, in one run with a pinned thread count: training chars/s, held-out bits/char, generation
chars/s with and without the KV cache (and that both produce the same story), and peak memory.

    .venv/bin/python -m bench.end_to_end                      # 120 s of training, 1 thread
    .venv/bin/python -m bench.end_to_end --time 10m --threads 2

Data defaults to the TinyStories slices in ../shared/data/tinystories (train: the V1 2 MiB slice;
held-out: the disjoint V2 slice). They are not part of the repository; pass --data/--val-data to
use other files.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from minigpt import ModelConfig, SampleConfig, TrainConfig, evaluate, load, train
from minigpt.checkpoint import latest_state
from minigpt.generate import generate_ids, make_generator

from .core import HELD_OUT, SHARED, TRAIN, cpu_name


def time_generation(model, tokenizer, use_cache: bool, chars: int) -> tuple[float, str]:
    cfg = SampleConfig(max_new_tokens=chars, temperature=0.8, stop_at_eos=False, use_cache=use_cache)
    prompt = [tokenizer.eos_id] + tokenizer.encode("Once upon a time")
    start = time.perf_counter()
    ids = list(generate_ids(model, prompt, cfg, tokenizer.eos_id, make_generator(0)))
    return len(ids) / (time.perf_counter() - start), tokenizer.decode(ids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(TRAIN))
    p.add_argument("--val-data", default=str(HELD_OUT))
    p.add_argument("--time", default="120s", help="training wall-clock budget")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-chars", type=int, default=200_000, help="held-out characters scored")
    p.add_argument("--gen-chars", type=int, default=1000)
    args = p.parse_args()
    for path in (args.data, args.val_data):
        if not Path(path).exists():
            sys.exit(f"bench: {path} not found: put the TinyStories slices in {SHARED} or pass "
                     "--data/--val-data")
    torch.set_num_threads(args.threads)
    model_cfg = ModelConfig()
    train_cfg = TrainConfig(data=[args.data], max_time=args.time, threads=args.threads,
                            eval_interval=10**9, sample_chars=0, device="cpu")
    print(f"setup: torch {torch.__version__} | {cpu_name()} | {args.threads} thread(s) | "
          f"python {platform.python_version()}")
    print(f"model: {model_cfg}")
    print(f"train: data={args.data} batch_size={train_cfg.batch_size} lr={train_cfg.learning_rate} "
          f"budget={args.time}")
    with tempfile.TemporaryDirectory() as tmp:
        run = train(model_cfg, train_cfg, Path(tmp) / "run", log=lambda *a: None)
        state = latest_state(run)
        chars = state["step"] * train_cfg.batch_size * model_cfg.block_size
        model, tokenizer, _ = load(run, device="cpu")
        params = model.num_parameters()
        held = evaluate(model, tokenizer, args.val_data, max_chars=args.eval_chars)
        fast, story_fast = time_generation(model, tokenizer, True, args.gen_chars)
        slow, story_slow = time_generation(model, tokenizer, False, args.gen_chars)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nparameters:            {params:,}")
    print(f"training:              {state['step']} steps in {state['elapsed_s']:.0f} s = "
          f"{chars / state['elapsed_s']:,.0f} chars/s")
    print(f"held-out ({held['chars']:,} chars of {Path(args.val_data).name}): "
          f"{held['bits_per_char']:.3f} bits/char ({held['nats_per_char']:.3f} nats/char, "
          f"perplexity {held['perplexity']:.2f}, {held['skipped_chars']} chars skipped)")
    print(f"generation, KV cache:  {fast:,.0f} chars/s")
    print(f"generation, recompute: {slow:,.0f} chars/s   (cache speed-up x{fast / slow:.1f}; "
          f"same story: {story_fast == story_slow})")
    print(f"peak memory (RSS):     {peak_mb:,.0f} MB")
    print(f"\nsample (temperature 0.8):\nOnce upon a time{story_fast[:600]}")


if __name__ == "__main__":
    main()
