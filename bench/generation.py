"""Generation speed: the KV cache against the naive loop, and what top-k / top-p sampling cost.

Same model, same weights, same thread count, in one run:
  naive       the seed's loop: re-run the whole (cropped) context for every new character
  recompute   our `--no-cache` path (the same idea, inside our generator)
  cache       our default path: preallocated KV cache, one new position per step
and, with the cache, plain sampling vs top-k 20 vs top-p 0.9. Speed does not depend on what the
weights learned, so the models are freshly initialised and never stop at end-of-story.

    .venv/bin/python bench/generation.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from core import cpu_name  # noqa: E402
from minigpt import MiniGPT, ModelConfig, SampleConfig  # noqa: E402
from minigpt.generate import generate_ids, make_generator  # noqa: E402

VOCAB = 71  # the size of the TinyStories character vocabulary


def naive_loop(model: MiniGPT, prompt: list[int], n: int, generator) -> list[int]:
    """The seed's generate(): crop to block_size, run everything, sample from the last logits."""
    idx = torch.tensor([prompt])
    block = model.config.block_size
    with torch.no_grad():
        for _ in range(n):
            logits = model(idx[:, -block:])[0]
            probs = torch.softmax(logits[:, -1, :] / 0.8, dim=-1)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return idx[0, len(prompt):].tolist()


def rate(fn, chars: int, repeats: int) -> float:
    """Best characters/second over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return chars / best


def ours(model, prompt, chars, **sampling):
    cfg = SampleConfig(max_new_tokens=chars, temperature=0.8, stop_at_eos=False, **sampling)
    return lambda: list(generate_ids(model, prompt, cfg, None, make_generator(0)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chars", type=int, default=1000, help="characters generated per measurement")
    p.add_argument("--repeats", type=int, default=5, help="runs per measurement; the best counts")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = {
        "default (4 x 128, block 128)": ModelConfig(vocab_size=VOCAB),
        "large (4 x 256, block 256)": ModelConfig(vocab_size=VOCAB, n_embd=256, num_heads=8,
                                                  block_size=256),
    }
    print(f"# {cpu_name()} | torch {torch.__version__} | {args.threads} thread(s) | "
          f"{args.chars} new characters after a 16-character prompt, best of {args.repeats}")
    print("| model | params | naive loop | --no-cache | KV cache | cache / naive |")
    print("|---|---:|---:|---:|---:|---:|")
    prompt = list(range(1, 17))
    default_model = None
    for name, cfg in models.items():
        torch.manual_seed(0)
        model = MiniGPT(cfg).eval()
        default_model = default_model or model
        naive = rate(lambda: naive_loop(model, prompt, args.chars, make_generator(0)), args.chars,
                     args.repeats)
        recompute = rate(ours(model, prompt, args.chars, use_cache=False), args.chars, args.repeats)
        cached = rate(ours(model, prompt, args.chars), args.chars, args.repeats)
        print(f"| {name} | {model.num_parameters():,} | {naive:,.0f} | {recompute:,.0f} | "
              f"{cached:,.0f} | {cached / naive:.1f}x |", flush=True)

    model = default_model
    print("\n| sampling (default model, KV cache) | chars/s | cost vs plain |")
    print("|---|---:|---:|")
    plain = None
    for label, sampling in (("plain (temperature 0.8)", {}), ("top-k 20", {"top_k": 20}),
                            ("top-p 0.9", {"top_p": 0.9}), ("top-k 20 + top-p 0.9",
                                                            {"top_k": 20, "top_p": 0.9})):
        speed = rate(ours(model, prompt, args.chars, **sampling), args.chars, args.repeats)
        plain = plain or speed
        print(f"| {label} | {speed:,.0f} | {plain / speed - 1:+.0%} |", flush=True)


if __name__ == "__main__":
    main()
