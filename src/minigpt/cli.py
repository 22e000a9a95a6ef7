"""The `minigpt` command: train, generate, eval, and the learning tools attention, plot, summary, next.

Each sub-command turns its options into the config dataclasses and calls the same functions the
Python API uses. A mistake in the input (a `UserError`) is printed as one line on stderr with exit
code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus exit code 2) rather than the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


CHECKPOINT_HELP = ("run directory, model directory (minigpt export), 'bundled' or a Hub id "
                   "owner/name (default: the newest run under runs/, else the bundled model)")


def _names(name: str) -> list[str]:
    """--block-size and the seed's spelling --block_size both work."""
    dashed = "--" + name.replace("_", "-")
    return [dashed, "--" + name] if "_" in name else [dashed]


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model and save a run directory",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train a character-level GPT. Options left out come from "
                       "--config, then from the built-in defaults shown here.")
    from .config import ModelConfig, TrainConfig

    model, trainer = ModelConfig(), TrainConfig()
    from .config import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe under --config and "
                   "the options: " + "; ".join(f"{k}: {v['about']}" for k, v in PRESETS.items()))
    p.add_argument("--config", help="TOML file with [model] and [train] tables (or flat keys)")
    p.add_argument("--data", action="append", help="tinystories | bundled | file | directory; "
                   "repeat or separate with commas for several (default: tinystories)")
    p.add_argument("--val-data", action="append", help="held-out data (default: 10%% of the stories)")
    p.add_argument("--max-chars", type=int, help="read at most this many characters "
                   "(default: 1,000,000 from the hub, everything from files)")
    p.add_argument("--tokenizer", choices=["char", "bpe", "word"],
                   help="char: one token per character (default); bpe: byte-level BPE; word: words "
                   "and punctuation, rare ones as <unk>")
    p.add_argument("--vocab-size", "--vocab_size", type=int, dest="tokenizer_vocab_size",
                   help="bpe/word vocabulary size, end-of-story included (default: bpe 512, word 4096)")
    p.add_argument("--out", default=None, help="run directory to create (default: runs/<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this directory")
    g = p.add_argument_group("model")
    for name, kind in (("block_size", int), ("n_embd", int), ("num_heads", int), ("n_layers", int),
                       ("ff_hidden_mult", int), ("dropout", float), ("attn_dropout", float)):
        default = getattr(model, name)
        g.add_argument(*_names(name), type=kind, dest=name,
                       help=f"default {'the same as --dropout' if default is None else default}")
    g.add_argument("--attention", choices=["fast", "explicit"], help="default fast")
    g.add_argument("--no-bias", dest="bias", action="store_const", const=False,
                   help="no biases in Linear layers and LayerNorms")
    g = p.add_argument_group("training")
    for name, kind in (("batch_size", int), ("grad_accum", int), ("learning_rate", float),
                       ("min_lr_ratio", float), ("epochs", float), ("muon_momentum", float),
                       ("max_steps", int), ("warmup_steps", int), ("weight_decay", float),
                       ("grad_clip", float), ("eval_interval", int), ("eval_batches", int),
                       ("sample_chars", int), ("keep_checkpoints", int), ("seed", int), ("threads", int)):
        g.add_argument(*_names(name), type=kind, dest=name, help=f"default {getattr(trainer, name)}")
    g.add_argument("--optimizer", choices=["adamw", "muon"], help=f"default {trainer.optimizer}")
    g.add_argument("--max-time", "--max_time", dest="max_time", help="wall-clock budget: 90s, 10m, 1h")
    g.add_argument("--device", help="auto | cpu | cuda | mps (default auto)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="bf16 autocast where the hardware has bf16 units (default auto)")


def _add_sampling(p) -> None:
    from .config import SampleConfig

    d = SampleConfig()
    p.add_argument(*_names("max_new_tokens"), type=int, default=d.max_new_tokens, dest="max_new_tokens",
                   help="tokens to generate (characters, for a character model)")
    p.add_argument(*_names("max_new_chars"), type=int, dest="max_new_chars",
                   help="characters to generate, whatever the tokenizer (replaces --max-new-tokens)")
    p.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy")
    p.add_argument("--top-k", "--top_k", type=int, dest="top_k", help="keep the k likeliest characters")
    p.add_argument("--top-p", "--top_p", type=float, dest="top_p", help="nucleus sampling, in (0, 1]")
    p.add_argument("--greedy", action="store_true", help="always take the likeliest character")
    p.add_argument("--seed", type=int, help="make the story reproducible")
    p.add_argument("--num-samples", type=int, default=1, help="how many stories, written at once "
                   "(story i uses --seed + i)")
    p.add_argument("--no-stop", action="store_true", help="keep going past the end of the story")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each step")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minigpt", description="A small character-level GPT for TinyStories.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"minigpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    p = sub.add_parser("generate", help="write a story from a prompt",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("prompt", nargs="?", default="", help="how the story begins")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--device", default="auto")
    _add_sampling(p)
    p = sub.add_parser("eval", help="held-out loss in nats/char, bits/char and perplexity")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--data", action="append", required=True, help="file, directory or 'bundled'")
    p.add_argument("--max-chars", type=int, help="evaluate at most this many characters")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = sub.add_parser("serve", help="a local web page and HTTP API for writing stories")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 keeps it on this computer")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", "--max-concurrent", type=int, default=16, dest="max_batch",
                   help="stories written at once, in one batch (default 16; --max-concurrent: the "
                   "old name)")
    p.add_argument("--max-waiting", type=int, help="requests that may wait for a free row, each at "
                   "most 10 s (default: 4 x --max-batch); past that: 503 busy")
    p.add_argument("--threads", type=int, help="torch threads for the engine (default: one per "
                   "physical core)")
    p = sub.add_parser("report", help="held-out bits/char and measures of generated stories")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--data", action="append", help="held-out data (default: the run's own held-out split)")
    p.add_argument("--stories", type=int, default=20, help="stories to generate")
    p.add_argument("--max-new-chars", type=int, default=1500, help="length limit of each story")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0, help="story i uses seed + i")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p = sub.add_parser("export", help="write a run as a Hub-style model directory")
    p.add_argument("--checkpoint", required=True, help="the run directory to export")
    p.add_argument("--out", required=True, help="new directory: config.json, model.safetensors, "
                   "tokenizer.json, words.txt")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="weights' storage type (fp16: half the size; loaded as fp32)")
    p.add_argument("--card", help="a model card (markdown) to include as README.md")
    p = sub.add_parser("attention", help="save a PNG grid of attention heat-maps for a prompt")
    p.add_argument("prompt", help="the characters to look at (up to block_size)")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--layer", type=int, help="only this layer (0-based)")
    p.add_argument("--head", type=int, help="only this head (0-based)")
    p.add_argument("--out", default="attention.png", help="PNG file to write")
    p = sub.add_parser("plot", help="save a PNG of loss curves for one or more runs")
    p.add_argument("runs", nargs="+", help="run directories to compare")
    p.add_argument("--out", default="loss.png", help="PNG file to write")
    p = sub.add_parser("summary", help="every module: output shape and parameter count")
    p.add_argument("--checkpoint", help="a run directory; without it, a fresh model from --config "
                   "and the model options below")
    p.add_argument("--config", help="TOML file with a [model] table")
    for name, kind in (("block_size", int), ("n_embd", int), ("num_heads", int), ("n_layers", int),
                       ("ff_hidden_mult", int)):
        p.add_argument(*_names(name), type=kind, dest=name)
    p.add_argument("--vocab-size", type=int, default=97,
                   help="without a checkpoint: printable ASCII + newline + end-of-story = 97")
    p.add_argument("--batch", type=int, default=1, help="B in the example forward pass")
    p = sub.add_parser("next", help="the likeliest next characters after a prompt, with probabilities")
    p.add_argument("prompt", nargs="?", default="")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--top", type=int, default=10, help="how many characters to list")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", "--top_k", type=int, dest="top_k")
    p.add_argument("--top-p", "--top_p", type=float, dest="top_p")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser


def _split_specs(values):
    return [part for value in values or [] for part in value.split(",") if part]


def cmd_train(args) -> int:
    import dataclasses
    import time
    from pathlib import Path

    from .config import ModelConfig, TrainConfig, load_toml, merged, preset_sections
    from .device import keep_freed_memory
    from .rundir import RESUMABLE, saved_train_config
    from .train import train

    # This process is ours, so it may tune the C allocator (the library's train() leaves a host
    # program's allocator alone; call keep_freed_memory() yourself for the same few percent).
    keep_freed_memory()
    preset = preset_sections(args.preset)
    sections = load_toml(args.config) if args.config else {"model": {}, "train": {}}
    options = vars(args)
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    base_model = merged(ModelConfig(), preset["model"], "model")
    model_cfg = merged(merged(base_model, sections["model"], "model"),
                       {k: v for k, v in options.items() if k in model_keys}, "model")
    overrides = {k: v for k, v in options.items() if k in train_keys and k not in ("data", "val_data")}
    overrides["data"] = _split_specs(args.data) or None
    overrides["val_data"] = _split_specs(args.val_data) or None
    if args.resume:
        # Start from the run's own settings; a new budget (any of epochs, max_steps, max_time)
        # replaces the whole saved budget, so `--resume RUN --max-steps 5000` means "go to 5000".
        fixed = sorted(k for k, v in options.items() if v is not None and k not in RESUMABLE
                       and (k in model_keys or k in train_keys or k in ("config", "out", "preset")))
        if fixed:
            raise UserError(f"--resume continues a run as it was saved; {', '.join(fixed)} cannot "
                            f"change (only {', '.join(RESUMABLE)} can)")
        saved = saved_train_config(args.resume)
        budget = ("epochs", "max_steps", "max_time")
        if any(overrides.get(k) is not None for k in budget):
            saved = dataclasses.replace(saved, **{k: None for k in budget})
        run = train(None, merged(saved, overrides, "train"), args.resume, resume=True)
    else:
        base = merged(TrainConfig(), preset["train"], "train")
        cfg = merged(merged(base, sections["train"], "train"), overrides, "train")
        out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
        run = train(model_cfg, cfg, out)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"saved run: {run}\nwrite a story with: minigpt generate --checkpoint {run} "
              "\"Once upon a time\"")
    return 0


def _resolve_checkpoint(path):
    """A run directory, model directory, 'bundled' or Hub id as given; without one, the newest
    run under ./runs, or the bundled model when there is none."""
    from .pretrained import default_checkpoint, resolve

    return resolve(path) if path else default_checkpoint()


def cmd_generate(args) -> int:
    from .pretrained import from_pretrained
    from .config import SampleConfig
    from .data import normalise_characters
    from .device import pick_device
    from .engine import Engine

    cfg = SampleConfig(max_new_tokens=None if args.max_new_chars is not None else args.max_new_tokens,
                       max_new_chars=args.max_new_chars, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, greedy=args.greedy, seed=args.seed,
                       num_samples=args.num_samples, stop_at_eos=not args.no_stop,
                       use_cache=not args.no_cache)
    cfg.validate()
    device = pick_device(args.device)
    model, tokenizer, _ = from_pretrained(_resolve_checkpoint(args.checkpoint), device)
    prompt = normalise_characters(args.prompt)
    engine = Engine(model, tokenizer, max_batch=min(cfg.num_samples, 64), use_cache=cfg.use_cache)
    # Story i uses seed + i; all of them are written at once, one batched step per character.
    streams = [engine.add(engine.stream(prompt, cfg, None if cfg.seed is None else cfg.seed + i))
               for i in range(cfg.num_samples)]  # an unknown prompt character fails here, first
    if len(streams) == 1:  # one story streams to the terminal as it is written
        streams[0].notify = lambda kind, piece: kind == "piece" and print(piece, end="", flush=True)
        print(prompt, end="", flush=True)
        engine.run()
        print()
        return 0
    printed = 0
    while printed < len(streams):  # each story is printed, in order, once it is finished
        engine.step()
        while printed < len(streams) and streams[printed].finished:
            print(("\n" + "-" * 40 + "\n" if printed else "") + prompt + streams[printed].text, flush=True)
            printed += 1
    return 0


def cmd_eval(args) -> int:
    from .api import evaluate
    from .pretrained import from_pretrained
    from .device import pick_device

    model, tokenizer, _ = from_pretrained(_resolve_checkpoint(args.checkpoint), pick_device(args.device))
    result = evaluate(model, tokenizer, _split_specs(args.data), max_chars=args.max_chars)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['chars']:,} characters: {result['nats_per_char']:.4f} nats/char | "
              f"{result['bits_per_char']:.4f} bits/char | perplexity {result['perplexity']:.3f}")
        if tokenizer.kind != "char":
            print(f"{result['tokens']:,} {tokenizer.kind} tokens: {result['nats_per_token']:.4f} "
                  f"nats/token ({result['chars'] / result['tokens']:.2f} characters per token)")
        if result.get("unk_share"):
            print(f"{result['unk_share']:.2%} of the tokens are <unk> (words outside the vocabulary)")
        if result["skipped_chars"]:
            print(f"({result['skipped_chars']:,} characters outside the model's vocabulary were skipped)")
    return 0


def cmd_serve(args) -> int:
    from .serve import serve

    if args.max_batch <= 0 or not 0 < args.port < 65536 or (args.threads is not None and args.threads <= 0):
        raise UserError("--max-batch and --threads must be positive and --port between 1 and 65535")
    if args.max_waiting is not None and args.max_waiting < 0:
        raise UserError(f"--max-waiting must be >= 0, got {args.max_waiting}")
    serve(_resolve_checkpoint(args.checkpoint), args.host, args.port, args.max_batch, args.threads,
          args.max_waiting)
    return 0


def cmd_attention(args) -> int:
    from .pretrained import from_pretrained
    from .introspect import attention_maps
    from .viz import plot_attention

    model, tokenizer, _ = from_pretrained(_resolve_checkpoint(args.checkpoint))
    maps, labels = attention_maps(model, tokenizer, args.prompt)
    print(f"saved {plot_attention(maps, labels, args.out, args.layer, args.head)} "
          f"({maps.shape[0]} layers x {maps.shape[1]} heads, {len(labels)} characters)")
    return 0


def cmd_plot(args) -> int:
    from .viz import plot_loss

    print(f"saved {plot_loss(args.runs, args.out)}")
    return 0


def cmd_summary(args) -> int:
    from .pretrained import from_pretrained
    from .config import ModelConfig, load_toml, merged
    from .introspect import format_summary, summary
    from .model import MiniGPT

    if args.checkpoint:
        model, _, _ = from_pretrained(_resolve_checkpoint(args.checkpoint))
    else:
        sections = load_toml(args.config) if args.config else {"model": {}}
        knobs = {k: getattr(args, k) for k in ("block_size", "n_embd", "num_heads", "n_layers",
                                               "ff_hidden_mult")}
        cfg = merged(merged(ModelConfig(), sections["model"], "model"), knobs, "model")
        cfg.vocab_size = args.vocab_size
        cfg.validate()
        model = MiniGPT(cfg)
    if args.batch <= 0:
        raise UserError(f"--batch must be a positive integer, got {args.batch}")
    print(format_summary(summary(model, batch=args.batch), model))
    return 0


def cmd_next(args) -> int:
    from .pretrained import from_pretrained
    from .config import SampleConfig
    from .introspect import next_char_probabilities

    if args.top <= 0:
        raise UserError(f"--top must be a positive integer, got {args.top}")
    model, tokenizer, _ = from_pretrained(_resolve_checkpoint(args.checkpoint))
    cfg = SampleConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    rows = next_char_probabilities(model, tokenizer, args.prompt, cfg, top=args.top)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"after {args.prompt[-40:]!r}: model probability | after temperature {cfg.temperature}, "
          f"top-k {cfg.top_k}, top-p {cfg.top_p}")
    for row in rows:
        bar = "#" * round(40 * row["prob"])
        print(f"  {row['char']!r:8} {row['prob']:7.2%}  {row['sampled']:7.2%}  {bar}")
    return 0


def cmd_report(args) -> int:
    from .device import pick_device
    from .report import format_report, report

    if args.stories <= 0 or args.max_new_chars <= 0:
        raise UserError("--stories and --max-new-chars must be positive")
    if not args.temperature >= 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    result = report(_resolve_checkpoint(args.checkpoint), _split_specs(args.data) or None,
                    args.stories, args.max_new_chars, args.seed, args.temperature,
                    pick_device(args.device))
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def cmd_export(args) -> int:
    from .pretrained import export

    if os.path.exists(os.path.join(args.out, "config.json")):
        raise UserError(f"{args.out} already holds a model; choose a new --out")
    out = export(args.checkpoint, args.out, args.dtype, args.card)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"saved {out} ({size / 1e6:.1f} MB): load it with --checkpoint {out} or "
          f"minigpt.from_pretrained({str(out)!r})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"train": cmd_train, "generate": cmd_generate, "eval": cmd_eval,
               "serve": cmd_serve, "attention": cmd_attention, "plot": cmd_plot, "summary": cmd_summary,
               "next": cmd_next, "report": cmd_report, "export": cmd_export}[args.command]
    try:
        return command(args)
    except UserError as exc:
        print(f"minigpt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `minigpt generate | head` closed the pipe: not an error
        return 0
