"""Training step speed of this checkout against the implementation before the generation engine.

The one-forward model (#17) must not slow training down. Both source trees run the same step in
worker processes that take turns (bench/core.py), `--rounds` rounds of `--steps` steps each;
each system's best round counts. The step is what `minigpt train` runs by default: forward under
`--precision auto`, backward, the Muon + AdamW optimizer, on random ids.

    .venv/bin/python -m bench.speed.train_vs_before --threads 1
    .venv/bin/python -m bench.speed.train_vs_before --threads 1 --preset modern --before HEAD~1

`--preset` builds both shapes with a preset's architecture (classic, modern, ...; both trees
must know it), to time a change to one of the ladder's options.
"""

from __future__ import annotations

import argparse
import tempfile

from ..core import (BEFORE, SRC, before_tree, cpu_name, python_module, remove_tree, serve_rounds,
                    take_turns, training_step)

SHAPES = {"default (4 x 128, block 128, batch 16)": dict(n_layers=4, n_embd=128, block_size=128, batch=16),
          "bundled (6 x 192, block 256, batch 16)": dict(n_layers=6, n_embd=192, block_size=256, batch=16,
                                                         num_heads=6)}


def worker(shape: str, steps: int, threads: int, preset: str) -> None:
    import torch

    from minigpt import MiniGPT, ModelConfig, TrainConfig
    from minigpt.precision import resolve_precision
    from minigpt.train import make_optimizer

    torch.set_num_threads(threads)
    spec = dict(SHAPES[shape])
    batch = spec.pop("batch")
    if preset != "default":  # the preset's architecture (its ladder fields) on this shape
        from minigpt.config import CLASSIC, resolve

        spec.update({k: getattr(resolve(preset)[0], k) for k in CLASSIC})
    cfg = ModelConfig(vocab_size=71, **spec)
    precision = resolve_precision("auto", torch.device("cpu"), cfg.n_embd)[0]
    torch.manual_seed(0)
    model = MiniGPT(cfg)
    if hasattr(model, "prepare"):  # this checkout: the attention kernel is chosen once, as train() does
        from minigpt.precision import attention_kernel
        model.prepare(attention_kernel(precision, torch.device("cpu")))
    optimizer = make_optimizer(model, TrainConfig(precision=precision))
    serve_rounds(training_step(model, 71, cfg.block_size, batch, precision, optimizer), steps, precision)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", default=BEFORE, help="git ref of the implementation to compare with")
    p.add_argument("--preset", default="default", help="the architecture of a named preset")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]), args.worker[3])
        return
    print(f"# {cpu_name()} | {args.threads} thread(s) | best of {args.rounds} rounds x {args.steps} "
          f"steps, the two trees taking turns | before = {args.before} | preset {args.preset}")
    print("| shape | precision | before ms/step | now ms/step | now / before |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        before = before_tree(args.before, tmp)
        try:
            for shape in SHAPES:
                commands = {}
                for name, src in (("before", before), ("now", SRC)):
                    commands[name] = python_module(__spec__.name, "--worker", shape, str(args.steps),
                                                   str(args.threads), args.preset, src=src,
                                                   threads=args.threads)
                ready, results = take_turns(commands, args.rounds)
                b, n = (min(r[0] for r in results[k]) for k in ("before", "now"))
                print(f"| {shape} | {ready['now'][0]} | {b * 1e3:.1f} | {n * 1e3:.1f} | {n / b:.3f}x |",
                      flush=True)
        finally:
            remove_tree(before)


if __name__ == "__main__":
    main()
