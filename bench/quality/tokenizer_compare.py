"""Which tokenizer buys the most in a fixed CPU budget: characters, BPE, or words?

Every candidate trains with today's default recipe (4 layers x 128, block 128 *tokens*, batch 16)
for the same --max-time on the first 1,000,000 characters of the V1 TinyStories slice, with the
same thread count, then is scored on the same held-out stories (the last 10% of the stories of the
V2 slice) in bits per *character* of the text, so the tokenizers compare. Per run it prints
parameters, steps, training characters/s (tokens/s x characters per token), held-out bits/char and
nats/token, generation characters/s (1 thread, KV cache), and a sample story (seed 1).

    .venv/bin/python -m bench.quality.tokenizer_compare --time 10m            # every candidate below, one at a time
    .venv/bin/python -m bench.quality.tokenizer_compare --time 1m --only char,bpe-512
    .venv/bin/python -m bench.quality.tokenizer_compare --time 10m --recipe="--preset adamw"  # as in the README
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..core import add_budget_arguments, train_all

CANDIDATES = {
    "char": "--tokenizer char",
    "bpe-384": "--tokenizer bpe --vocab-size 384",
    "bpe-512": "--tokenizer bpe --vocab-size 512",
    "bpe-1024": "--tokenizer bpe --vocab-size 1024",
    "bpe-4096": "--tokenizer bpe --vocab-size 4096",
    "word-4096": "--tokenizer word --vocab-size 4096",
}
PROMPT = "Once upon a time"


def score(name: str, options: str, run: Path, held_out: str, threads: int) -> dict:
    import torch

    from minigpt import evaluate, load
    from minigpt.config import SampleConfig
    from minigpt.generate import stream
    from minigpt.runlog import read_metrics

    torch.set_num_threads(threads)
    model, tok, _ = load(run, "cpu")
    result = evaluate(model, tok, held_out)
    metrics = read_metrics(run)
    train_speed = sum(m["chars_per_s"] for m in metrics) / len(metrics)
    cfg = SampleConfig(max_new_tokens=None, max_new_chars=400, seed=1, temperature=0.8,
                       stop_at_eos=False)
    start = time.perf_counter()
    text = "".join(stream(model, tok, PROMPT, cfg))
    gen_speed = len(text) / (time.perf_counter() - start)
    sample = PROMPT + "".join(stream(model, tok, PROMPT, SampleConfig(max_new_tokens=None,
                                                                      max_new_chars=300, seed=1)))
    unk = f" ({result['unk_share']:.1%} <unk>)" if "unk_share" in result else ""
    row = (f"| {name} | {tok.vocab_size:,} | {model.num_parameters():,} | {metrics[-1]['step']:,} | "
           f"{result['chars'] / result['tokens']:.2f} | {train_speed:,.0f} | {gen_speed:,.0f} | "
           f"{result['nats_per_token']:.3f}{unk} | **{result['bits_per_char']:.3f}** |")
    return {"name": name, "bpc": result["bits_per_char"], "row": row, "sample": sample}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_budget_arguments(p)
    p.add_argument("--recipe", default="", help="options added to every candidate; the README's "
                   "table ran with --recipe='--preset adamw' (AdamW, the default optimizer then)")
    args = p.parse_args()
    candidates = {name: f"{args.recipe} {options}".strip() for name, options in CANDIDATES.items()}
    header = ("| tokenizer | vocab | params | steps | chars/token | train chars/s | generate chars/s "
              "| held-out nats/token | held-out bits/char |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for name, options, run, held_out in train_all(args, candidates):
        results.append(score(name, options, run, held_out, args.threads))
        print(results[-1]["row"], flush=True)
    print("\n" + header)
    for r in results:
        print(r["row"])
    for r in results:
        print(f"\n{r['name']} (seed 1, temperature 0.8):\n{r['sample']}")


if __name__ == "__main__":
    main()
