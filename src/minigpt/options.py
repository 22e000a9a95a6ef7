"""The options of the `minigpt` command, made from the config dataclasses where there is one.

A field made with config.option becomes an option here with its names, help and real default
(`add_options`), so a knob is written once, in config/knobs.py. An option left out parses as
None, "not given", so that config.resolve can fill it in from a preset, a TOML file or a resumed
run. The
sub-commands' own options (--checkpoint, --port, --stories, ...) are written out below.
"""

from __future__ import annotations

import argparse
import dataclasses

from .config import PRESETS, RESUMABLE, ModelConfig, SampleConfig, TrainConfig


# What str.splitlines() breaks a line at: shown escaped, so an error is always one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(message: str) -> str:
    """`message` with its line breaks escaped (a path or prompt may hold a newline)."""
    return str(message).translate(_LINE_BREAKS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus exit code 2) rather than the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")

    def _get_values(self, action, arg_strings):
        # `--out=--`: argparse drops the '--' and returns [] for an option of one value.
        if action.nargs is None and action.option_strings and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument, not '--'")
        return super()._get_values(action, arg_strings)


CHECKPOINT_HELP = ("run directory, model directory (minigpt export), 'bundled' or a Hub id "
                   "owner/name (default: the newest run under runs/, else the bundled model)")
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (default: auto)"


def _names(name: str) -> list[str]:
    """--block-size and the seed's spelling --block_size both work."""
    dashed = "--" + name.replace("_", "-")
    return [dashed, "--" + name] if "_" in name else [dashed]


def _specs(text: str) -> list[str]:
    """`--data a,b`: several data specs in one option (repeating the option adds more)."""
    return [part for part in text.split(",") if part]


# How an option reads its value, by the field's type ('float | None' reads a float).
_KINDS = {"int": {"type": int}, "float": {"type": float}, "str": {"type": str},
          "list[str]": {"action": "extend", "type": _specs}}


def add_options(parser, cls, names: tuple[str, ...] = (), **defaults) -> None:
    """An option for each field of dataclass `cls` made with config.option (or for `names` only).

    Names, help and the real default come from the field. A left-out option is None ("not
    given", so a TOML file or a saved run can fill it in) unless `defaults` gives it a value."""
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata or (names and f.name not in names):
            continue
        kw = {"dest": f.name, **f.metadata["argparse"]}
        if "action" not in kw:  # a flag (action store_const) reads no value
            kw.update(_KINDS[str(f.type).split("|")[0].strip()])
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = defaults.get(f.name, ", ".join(default) if isinstance(default, list) else default)
        note = "" if shown in (None, "") or "const" in kw else f" (default: {shown})"
        parser.add_argument(*(f.metadata["flags"] or _names(f.name)), default=defaults.get(f.name),
                            help=(f.metadata["help"] + note).replace("%", "%%"), **kw)


def picked(args, *classes) -> dict:
    """The parsed options that are fields of `classes` (None: not given)."""
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model and save a run directory",
                       description="Train a character-level GPT. Options left out come from "
                       "--config, then --preset, then the built-in defaults shown here.")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe under --config and "
                   "the options: " + "; ".join(f"{k}: {v['about']}" for k, v in PRESETS.items()))
    p.add_argument("--config", help="TOML file with [model] and [train] tables (or flat keys)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="run directory to create (default: runs/<time>)")
    where.add_argument("--resume", metavar="RUN", help="continue the run in this directory, as it "
                       f"was saved (only {', '.join(RESUMABLE)} may change)")
    add_options(p.add_argument_group("model"), ModelConfig)
    add_options(p.add_argument_group("training"), TrainConfig)


def _add_loading(sub) -> None:
    """The sub-commands that load a model and write or score text with it."""
    p = sub.add_parser("generate", help="write a story from a prompt")
    p.add_argument("prompt", nargs="?", default="", help="how the story begins")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_options(p, SampleConfig)
    p = sub.add_parser("eval", help="held-out loss in nats/char, bits/char and perplexity")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--data", action="extend", type=_specs, required=True,
                   help="file, directory or 'bundled'; repeat or separate with commas for several")
    p.add_argument("--max-chars", type=int, help="evaluate at most this many characters")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = sub.add_parser("serve", help="a local web page and HTTP API for writing stories")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 keeps it on this computer")
    p.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    p.add_argument("--max-batch", "--max-concurrent", type=int, default=16, dest="max_batch",
                   help="stories written at once, in one batch (default 16; --max-concurrent: the "
                   "old name)")
    p.add_argument("--max-waiting", type=int, help="requests that may wait for a free row, each at "
                   "most 10 s (default: 4 x --max-batch); past that: 503 busy")
    p.add_argument("--threads", type=int, help="torch threads for the engine (default: one per "
                   "physical core)")
    p = sub.add_parser("report", help="held-out bits/char and measures of generated stories")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--data", action="extend", type=_specs,
                   help="held-out data (default: the run's own held-out split)")
    p.add_argument("--stories", type=int, default=20, help="stories to generate (default: 20)")
    p.add_argument("--max-new-chars", type=int, default=1500, help="length limit of each story "
                   "(default: 1500)")
    p.add_argument("--temperature", type=float, default=0.8, help="(default: 0.8)")
    p.add_argument("--seed", type=int, default=0, help="story i uses seed + i (default: 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p = sub.add_parser("export", help="write a run as a Hub-style model directory")
    p.add_argument("--checkpoint", required=True, help="the run directory to export")
    p.add_argument("--out", required=True, help="new or empty directory: config.json, "
                   "model.safetensors, tokenizer.json, words.txt (never inside a run directory)")
    p.add_argument("--force", action="store_true", help="--out may hold files: replace only those "
                   "export writes (keeping their permissions) and leave the rest alone")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="weights' storage type (fp16: half the size; loaded as fp32)")
    p.add_argument("--card", help="a model card (markdown) to include as README.md")
    p.add_argument("--format", default="minigpt", choices=["minigpt", "transformers"],
                   help="minigpt: this package's layout; transformers: HuggingFace transformers' "
                   "(a GPT-2 for the seed's architecture; pip install transformers)")


def _add_tools(sub) -> None:
    """The learning tools: pictures and numbers from inside a model."""
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
    add_options(p.add_argument_group("model"), ModelConfig)
    p.add_argument("--vocab-size", type=int, default=97, dest="vocab_size",
                   help="without a checkpoint: printable ASCII + newline + end-of-story = 97")
    p.add_argument("--batch", type=int, default=1, help="B in the example forward pass")
    p = sub.add_parser("next", help="the likeliest next characters after a prompt, with probabilities")
    p.add_argument("prompt", nargs="?", default="")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--top", type=int, default=10, help="how many characters to list (default: 10)")
    add_options(p, SampleConfig, ("temperature", "top_k", "top_p"), temperature=1.0)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="minigpt", description="A small character-level GPT for TinyStories.")
    parser.add_argument("--version", action="version", version=f"minigpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_loading(sub)
    _add_tools(sub)
    return parser

