"""Generation speed: the engine against today's implementation, a recompute loop and itself batched.

Every figure comes from a fresh worker process (same thread count, same weights), and the systems
take turns round after round, so a busy moment of the machine hits all of them alike; the best
round counts. Stories never stop at end-of-story, so every run writes exactly --chars characters.

  single stream   one story of --chars characters after a 16-character prompt:
    naive loop    re-run the whole (cropped) context for every new character, sample with
                  torch.multinomial: the loop other small GPT projects ship (and the seed did)
    --no-cache    the engine recomputing the whole window every step (its reference path)
    before        the implementation before the engine (git --before, default the last commit
                  without it): hand-unrolled decode() over its own KV cache
    engine        this checkout: one batched forward per step over the shared KV cache
                  (before and engine are also run in one process, taking turns story by story,
                  the old package imported as minigpt_before: the steadiest comparison here)
  batched         the engine with 1, 8 and 32 streams at once (aggregate characters per second),
                  and 16 stories one after another against the same 16 at once (--num-samples 16)
  sampling        plain vs top-k 20 vs top-p 0.9 in the engine
  presets         the classic preset's architecture against the modern one's, default shape,
                  one stream and 16 at once (--sections presets; not in the default sections)

    .venv/bin/python -m bench.speed.generation --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core import BEFORE, SRC, before_tree, cpu_name, python_module, remove_tree

VOCAB = 71  # the size of the TinyStories character vocabulary


def build_model(name: str):
    """The same weights in every worker: the bundled model, or a seeded fresh default model
    ('default', or 'preset:NAME' for a preset's architecture)."""
    import torch

    from minigpt import MiniGPT, ModelConfig
    from minigpt.pretrained import from_pretrained

    if name == "bundled":
        return from_pretrained("bundled")[0].eval()
    torch.manual_seed(0)
    if name.startswith("preset:"):  # the default shape with a preset's architecture
        from minigpt.config import resolve

        return MiniGPT(dataclasses.replace(resolve(name[7:])[0], vocab_size=VOCAB)).eval()
    return MiniGPT(ModelConfig(vocab_size=VOCAB)).eval()


def worker(job: dict) -> dict:
    """Runs inside a fresh process that imports minigpt from the source tree to measure."""
    import torch

    from minigpt import SampleConfig
    from minigpt.generate import generate_ids, make_generator

    torch.set_num_threads(job["threads"])
    model = build_model(job["model"])
    prompt = list(range(1, 17))
    chars, kind, batch = job["chars"], job["kind"], job.get("batch", 1)
    sampling = job.get("sampling", {})
    cfg = SampleConfig(max_new_tokens=chars, temperature=0.8, stop_at_eos=False,
                       use_cache=kind != "recompute", **sampling)

    def naive() -> None:  # the seed's generate(): crop to block_size, run it all, multinomial
        idx, block = torch.tensor([prompt]), model.config.block_size
        generator = make_generator(0)
        with torch.no_grad():
            for _ in range(chars):
                logits = model(idx[:, -block:])[0]
                probs = torch.softmax(logits[:, -1, :] / 0.8, dim=-1)
                idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)

    def single() -> None:
        list(generate_ids(model, prompt, cfg, None, make_generator(0)))

    def together() -> None:  # `batch` streams at once in one engine
        from minigpt.engine import Engine, Stream

        engine = Engine(model, max_batch=batch)
        for i in range(batch):
            engine.add(Stream(prompt, cfg, make_generator(i)))
        engine.run()

    def one_after_another() -> None:
        for i in range(batch):
            list(generate_ids(model, prompt, cfg, None, make_generator(i)))

    run = {"naive": naive, "recompute": single, "cache": single, "batch": together,
           "sequential": one_after_another}[kind]
    cfg_warm = SampleConfig(max_new_tokens=50, stop_at_eos=False)
    list(generate_ids(model, prompt, cfg_warm, None, make_generator(0)))  # warm up
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {"chars_per_s": chars * (batch if kind in ("batch", "sequential") else 1) / seconds,
            "seconds": seconds, "params": model.num_parameters()}


def measure(job: dict, src: Path) -> dict:
    out = subprocess.run(python_module(__spec__.name, "--worker", json.dumps(job), src=src,
                                       threads=job["threads"]), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"worker failed ({job}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rounds(jobs: dict[str, tuple[dict, Path]], n: int) -> dict[str, dict]:
    """Every job once per round, in turn; the best round of each."""
    best: dict[str, dict] = {}
    for _ in range(n):
        for label, (job, src) in jobs.items():
            result = measure(job, src)
            if label not in best or result["chars_per_s"] > best[label]["chars_per_s"]:
                best[label] = result
    return best


INTERLEAVED = """
import sys, time, torch
sys.path[:0] = [{pkgs!r}, {here!r}]
import minigpt_before
from minigpt import MiniGPT, ModelConfig, SampleConfig
from minigpt.pretrained import from_pretrained
torch.set_num_threads({threads})
systems = {{}}
for label, pkg in (("before", "minigpt_before"), ("engine", "minigpt")):
    mod = sys.modules[pkg]
    gen = sys.modules[pkg + ".generate"]
    if {model!r} == "bundled":
        net = sys.modules[pkg + ".pretrained"].from_pretrained("bundled")[0].eval()
    else:
        torch.manual_seed(0)
        net = mod.MiniGPT(mod.ModelConfig(vocab_size=71)).eval()
    cfg = mod.SampleConfig(max_new_tokens={chars}, temperature=0.8, stop_at_eos=False)
    systems[label] = (gen, net, cfg)
prompt = list(range(1, 17))
best = {{k: 1e9 for k in systems}}
for round in range({rounds} + 1):  # the first round warms up (and traces the engine's step)
    for label, (gen, net, cfg) in systems.items():
        start = time.perf_counter()
        list(gen.generate_ids(net, prompt, cfg, None, gen.make_generator(0)))
        if round:
            best[label] = min(best[label], time.perf_counter() - start)
print(best["before"], best["engine"])
"""


def interleaved(model: str, base: dict, here: Path, before: Path, rounds: int) -> tuple[float, float]:
    """Chars/s of before and engine in ONE process, taking turns story by story (the old package
    imported under the name minigpt_before): less exposed to the machine's swings."""
    pkgs = before.parent.parent / "pkgs"
    if not (pkgs / "minigpt_before").exists():
        shutil.copytree(before / "minigpt", pkgs / "minigpt_before")
    code = INTERLEAVED.format(pkgs=str(pkgs), here=str(here), threads=base["threads"], model=model,
                              chars=base["chars"], rounds=rounds)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(base["threads"]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"interleaved run failed:\n{out.stderr[-2000:]}")
    b, e = (float(v) for v in out.stdout.split())
    return base["chars"] / b, base["chars"] / e


def single_table(model: str, base: dict, here: Path, before: Path, n: int) -> None:
    jobs = {"naive loop": ({**base, "kind": "naive"}, here),
            "--no-cache": ({**base, "kind": "recompute"}, here),
            "before": ({**base, "kind": "cache"}, before),
            "engine": ({**base, "kind": "cache"}, here)}
    r = rounds(jobs, n)
    e, b, naive = (r[k]["chars_per_s"] for k in ("engine", "before", "naive loop"))
    print(f"\n## {model} model ({r['engine']['params']:,} parameters): single stream, chars/s")
    print("| naive loop | --no-cache | before (decode()) | engine | engine / before | engine / naive |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {naive:,.0f} | {r['--no-cache']['chars_per_s']:,.0f} | {b:,.0f} | {e:,.0f} | "
          f"{e / b:.3f}x | {e / naive:.1f}x |", flush=True)
    b, e = interleaved(model, base, here, before, 2 * n + 2)
    print(f"\nthe same two in one process, taking turns story by story (best of {2 * n + 2}): before "
          f"{b:,.0f}, engine {e:,.0f} chars/s: **{e / b:.3f}x**", flush=True)


def batched_tables(model: str, base: dict, here: Path, n: int) -> None:
    jobs = {f"batch {b}": ({**base, "kind": "batch", "batch": b}, here) for b in (1, 8, 32)}
    jobs["16 one after another"] = ({**base, "kind": "sequential", "batch": 16}, here)
    jobs["16 at once"] = ({**base, "kind": "batch", "batch": 16}, here)
    r = rounds(jobs, n)
    one = r["batch 1"]["chars_per_s"]
    print(f"\n## {model} model: the engine batched, aggregate chars/s")
    print("| streams | chars/s | vs 1 stream |")
    print("|---|---:|---:|")
    for label, result in r.items():
        print(f"| {label} | {result['chars_per_s']:,.0f} | {result['chars_per_s'] / one:.2f}x |")
    seq, once = r["16 one after another"], r["16 at once"]
    print(f"\n16 stories at once (--num-samples 16) vs one after another: {seq['seconds']:.2f} s -> "
          f"{once['seconds']:.2f} s (**{seq['seconds'] / once['seconds']:.1f}x**)", flush=True)


def sampling_table(base: dict, here: Path, n: int) -> None:
    jobs = {label: ({**base, "model": "default", "kind": "cache", "sampling": sampling}, here)
            for label, sampling in (("plain (temperature 0.8)", {}), ("top-k 20", {"top_k": 20}),
                                    ("top-p 0.9", {"top_p": 0.9}))}
    r = rounds(jobs, n)
    plain = r["plain (temperature 0.8)"]["chars_per_s"]
    print("\n| sampling (default model, engine) | chars/s | cost vs plain |")
    print("|---|---:|---:|")
    for label, result in r.items():
        print(f"| {label} | {result['chars_per_s']:,.0f} | {plain / result['chars_per_s'] - 1:+.0%} |")


def presets_table(base: dict, here: Path, n: int) -> None:
    """The seed's architecture against the ladder's (issue 20: the modern preset must generate at
    least as fast per character), one stream and 16 at once, taking turns."""
    names = ("classic", "modern")
    jobs = {}
    for name in names:
        jobs[f"{name} 1"] = ({**base, "model": f"preset:{name}", "kind": "cache"}, here)
        jobs[f"{name} 16"] = ({**base, "model": f"preset:{name}", "kind": "batch", "batch": 16}, here)
    r = rounds(jobs, n)
    print("\n| preset (default shape, engine) | params | 1 stream chars/s | 16 streams chars/s | "
          "1 stream vs classic | 16 vs classic |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        one, many = r[f"{name} 1"]["chars_per_s"], r[f"{name} 16"]["chars_per_s"]
        print(f"| {name} | {r[f'{name} 1']['params']:,} | {one:,.0f} | {many:,.0f} | "
              f"{one / r['classic 1']['chars_per_s']:.3f}x | {many / r['classic 16']['chars_per_s']:.3f}x |",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chars", type=int, default=500, help="characters per story (the CLI's default)")
    p.add_argument("--rounds", type=int, default=3, help="turns per system; the best counts")
    p.add_argument("--before", default=BEFORE, help="git ref of the implementation to compare with")
    p.add_argument("--models", default="default,bundled")
    p.add_argument("--sections", default="single,batched,sampling",
                   help="comma-separated: single, batched, sampling, presets")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    import torch

    here = SRC
    print(f"# {cpu_name()} | torch {torch.__version__} | {args.threads} thread(s) | {args.chars} new "
          f"characters per story after a 16-character prompt, temperature 0.8 | best of {args.rounds} "
          f"rounds, each system in a fresh process | before = {args.before}")
    with tempfile.TemporaryDirectory() as tmp:
        before = before_tree(args.before, tmp) if "single" in args.sections else None
        try:
            for model in args.models.split(","):
                base = {"model": model, "threads": args.threads, "chars": args.chars}
                if "single" in args.sections:
                    single_table(model, base, here, before, args.rounds)
                if "batched" in args.sections:
                    batched_tables(model, base, here, args.rounds)
            if "sampling" in args.sections:
                sampling_table({"threads": args.threads, "chars": args.chars}, here, args.rounds)
            if "presets" in args.sections:
                presets_table({"threads": args.threads, "chars": args.chars}, here, args.rounds)
        finally:
            if before is not None:
                remove_tree(before)


if __name__ == "__main__":
    main()
