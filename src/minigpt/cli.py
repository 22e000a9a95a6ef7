"""The `minigpt` command: train, generate, eval, serve, report, export, and the learning tools
attention, plot, summary, next.

Each sub-command is parse -> resolve -> call: options.py parses the command line (its options made
from the config dataclasses), config.resolve layers and checks the values, and the command calls
the same functions the Python API uses. A mistake in the input (a `UserError`) is printed as one
line on stderr with exit code 2 and no traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from .config import (ModelConfig, SampleConfig, TrainConfig, check_device, check_memory, check_range,
                     merged, resolve, saved_configs)
from .config.limits import MAX_BATCH, MAX_CHARS, MAX_NEW, MAX_SAMPLES, MAX_THREADS, MAX_VOCAB
from .errors import UserError
from .options import build_parser, one_line, picked


def _given(name: str, value: str | None) -> str | None:
    """An option that names a path or spec: None when left out, never empty, and a name the
    file system can hold (parts of at most 255 bytes, 4095 in all)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{name} is empty: give a path")
    raw = os.fsencode(value)
    if len(raw) > 4095 or any(len(part) > 255 for part in raw.split(b"/")) or b"\0" in raw:
        raise UserError(f"{name} {value[:60]!r}... is not a path this file system can hold: "
                        "names of at most 255 bytes, 4095 in all")
    return value


def _sampling(args) -> SampleConfig:
    """The checked SampleConfig of a command's sampling options."""
    cfg = merged(SampleConfig(), picked(args, SampleConfig), "sample")
    cfg.validate()
    return cfg


def _load(args, device: str = "cpu"):
    """(model, tokenizer, config.json) of --checkpoint (see CHECKPOINT_HELP)."""
    from .pretrained import load

    return load(_given("--checkpoint", args.checkpoint), check_device(device))


def cmd_train(args) -> int:
    import time

    from .device import keep_freed_memory
    from .train import train

    # This process is ours, so it may tune the C allocator (the library's train() leaves a host
    # program's allocator alone; call keep_freed_memory() yourself for the same few percent).
    keep_freed_memory()
    _given("--out", args.out)
    resumed = saved_configs(args.resume) if _given("--resume", args.resume) is not None else None
    model_cfg, cfg = resolve(args.preset, _given("--config", args.config),
                             picked(args, ModelConfig, TrainConfig), resumed)
    out = args.resume or args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
    run = train(model_cfg, cfg, out, resume=resumed is not None)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"saved run: {run}\nwrite a story with: minigpt generate --checkpoint {run} "
              "\"Once upon a time\"")
    return 0


def cmd_generate(args) -> int:
    from .engine import Engine

    cfg = _sampling(args)
    check_device(args.device)
    model, tokenizer, _ = _load(args, args.device)
    engine = Engine(model, tokenizer, max_batch=min(cfg.num_samples, 64), use_cache=cfg.use_cache)
    # Story i uses seed + i; all of them are written at once, one batched step per character.
    streams = [engine.add(engine.stream(args.prompt, cfg, None if cfg.seed is None else cfg.seed + i))
               for i in range(cfg.num_samples)]  # an unknown prompt character fails here, first
    prompt = streams[0].prompt  # as the model reads it (prompt.py)
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

    check_range("--max-chars", args.max_chars, 1, most=MAX_CHARS)
    check_device(args.device)
    if not all(spec.strip() for spec in args.data):
        raise UserError("--data has an empty spec: name a file, a directory or 'bundled'")
    model, tokenizer, _ = _load(args, args.device)
    result = evaluate(model, tokenizer, args.data, max_chars=args.max_chars)
    if args.json:
        print(json.dumps(result))
        return 0
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

    check_range("--max-batch", args.max_batch, 1, most=1024)
    check_range("--max-waiting", args.max_waiting, 0, most=10**6)
    check_range("--threads", args.threads, 1, most=MAX_THREADS)
    check_range("--port", args.port, 1, 65535)
    serve(args.checkpoint, args.host, args.port, args.max_batch, args.threads, args.max_waiting)
    return 0


def cmd_report(args) -> int:
    from .report import format_report, report

    check_range("--stories", args.stories, 1, most=MAX_SAMPLES)
    check_range("--max-new-chars", args.max_new_chars, 1, most=MAX_NEW)
    cfg = _sampling(args)
    check_device(args.device)
    if args.data is not None and not all(spec.strip() for spec in args.data):
        raise UserError("--data has an empty spec: name a file, a directory or 'bundled'")
    result = report(args.checkpoint, args.data, args.stories, cfg.max_new_chars, cfg.seed,
                    cfg.temperature, args.device)
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def cmd_export(args) -> int:
    from .pretrained import export

    out = export(args.checkpoint, args.out, args.dtype, args.card, force=args.force, format=args.format)
    size = sum(f.stat().st_size for f in out.iterdir())
    if args.format == "transformers":
        gpt2 = json.loads((out / "config.json").read_text(encoding="utf-8")).get("model_type") == "gpt2"
        print(f"saved {out} ({size / 1e6:.1f} MB), a transformers {'GPT-2' if gpt2 else 'MiniGPT'}: "
              f"{'' if gpt2 else 'import minigpt.hf, then '}AutoModelForCausalLM.from_pretrained({str(out)!r}) "
              f"or pipeline('text-generation', model={str(out)!r})")
        return 0
    print(f"saved {out} ({size / 1e6:.1f} MB): load it with --checkpoint {out} or "
          f"minigpt.from_pretrained({str(out)!r})")
    return 0


def cmd_attention(args) -> int:
    from .introspect import attention_maps
    from .viz import plot_attention

    model, tokenizer, _ = _load(args)
    _given("--out", args.out)
    maps, labels = attention_maps(model, tokenizer, args.prompt)
    print(f"saved {plot_attention(maps, labels, args.out, args.layer, args.head)} "
          f"({maps.shape[0]} layers x {maps.shape[1]} heads, {len(labels)} characters)")
    return 0


def cmd_plot(args) -> int:
    from .viz import plot_loss

    for run in args.runs:
        _given("a run directory", run)
    print(f"saved {plot_loss(args.runs, _given('--out', args.out))}")
    return 0


def cmd_summary(args) -> int:
    from .introspect import format_summary, summary
    from .model import MiniGPT

    check_range("--batch", args.batch, 1, most=MAX_BATCH)
    check_range("--vocab-size", args.vocab_size, 1, most=MAX_VOCAB)
    if args.checkpoint is not None:
        model = _load(args)[0]
        shape = model.config
    else:  # a model of the shape --config and the options give
        shape = resolve(None, _given("--config", args.config), picked(args, ModelConfig))[0]
    # The example forward pass, attention weights written out, must fit too (before it is built).
    check_memory(dataclasses.replace(shape, attention="explicit"), args.batch)
    if args.checkpoint is None:
        model = MiniGPT(shape)
    print(format_summary(summary(model, batch=args.batch), model))
    return 0


def cmd_next(args) -> int:
    from .introspect import next_char_probabilities

    check_range("--top", args.top, 1, most=MAX_VOCAB)
    cfg = _sampling(args)
    model, tokenizer, _ = _load(args)
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


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "eval": cmd_eval, "serve": cmd_serve,
            "report": cmd_report, "export": cmd_export, "attention": cmd_attention, "plot": cmd_plot,
            "summary": cmd_summary, "next": cmd_next}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:  # one line, whatever the message holds (a path with a newline)
        print(f"minigpt {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `minigpt generate | head` closed the pipe: not an error
        return 0
    except OSError as exc:  # the system refused a path or file it was given: one line too
        where = f" {exc.filename}" if exc.filename is not None else ""
        print(f"minigpt {args.command}: error: cannot use{one_line(where)[:300]}: "
              f"{one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
