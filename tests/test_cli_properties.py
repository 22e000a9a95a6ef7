"""Property test of the command line: every option of every sub-command, fed edge values.

The options are not listed here: they are read from the argument parser itself (options.py), so
a new option is fuzzed the day it is added. Each example runs `minigpt.cli.main(argv)` in-process
on a workspace holding a tiny run made here, with one option (or positional argument) set to an
edge value: inf, nan, 1e308, huge integers, -1, 0, '', very long or non-ASCII text, line breaks,
device files. Whatever the value, the command must either

  - refuse it: exit code 2, exactly one line on stderr, no traceback; or
  - accept it and reach its work: the expensive step of each command (training, the generation
    loop, evaluation, serving, export, saving a picture) is replaced by a stub that raises
    `Reached`, so a valid value never launches long work; the cheap ones (summary, next) run;

and no file in the workspace may change, whichever it was. Nothing else may escape main().
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_stories, write_txt  # noqa: E402

INTS = ["-1", "0", "-0", str(2**31), str(2**40), str(2**63), str(2**64), str(-2**64), "9" * 400,
        "1e20", "inf", "nan", "", " ", "0x10", "\u0663"]
FLOATS = ["inf", "-inf", "nan", "-nan", "1e308", "-1e308", "1e309", "-1", "0", "-0.0", "5e-324",
          str(2**64), str(2**40), "1" * 400, "", "0x1p3", "1_000"]
TEXTS = ["", " ", "x" * 5000, "\U0001F600", "\u05e9\u05dc\u05d5\u05dd", "\u4f60\u597d", "a\nb",
         "\u2028", "\x7f", "-", "--", "-1", "0", "inf", "nan", "/", ".", "..", "/dev/zero",
         "/dev/null", "nope/", "owner/name", "a" * 300 + "/b", "run/model.safetensors",
         "stories.txt", "run", "cuda:99", "tpu", "%s%n", "{d}"]

# The expensive step of each command: replaced by a stub, so an accepted value stops there.
STUBS = [("minigpt.train", "train"), ("minigpt.engine.Engine", "run"), ("minigpt.engine.Engine", "step"),
         ("minigpt.api", "evaluate"), ("minigpt.serve", "serve"), ("minigpt.report", "report"),
         ("minigpt.pretrained", "export"), ("matplotlib.figure.Figure", "savefig"),
         ("minigpt.introspect", "summary")]

# What each command needs besides the fuzzed value to get as far as its own checks.
BASE = {"train": ["--data", "stories.txt"], "generate": ["--checkpoint", "run"],
        "eval": ["--checkpoint", "run", "--data", "stories.txt"], "serve": ["--checkpoint", "run"],
        "report": ["--checkpoint", "run"], "export": ["--checkpoint", "run", "--out", "exported"],
        "attention": ["--checkpoint", "run"], "plot": [], "summary": ["--n-layers", "1"],
        "next": ["--checkpoint", "run"]}
POSITIONAL = {"generate": ["Once"], "attention": ["Once"], "plot": ["run"], "next": ["Once"]}


class Reached(Exception):
    """A stubbed expensive step was called: every check before it passed."""


def _reached(*_args, **_kwargs):
    raise Reached


def subcommands() -> dict[str, argparse.ArgumentParser]:
    from minigpt.options import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def fuzzed_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def values_for(action: argparse.Action) -> st.SearchStrategy[str]:
    """Edge values for one option, by how it reads its value."""
    if action.type is int:
        edges = INTS
    elif action.type is float:
        edges = FLOATS
    else:
        edges = TEXTS + [str(c) for c in action.choices or ()]
    return st.one_of(st.sampled_from(edges), st.sampled_from(INTS + FLOATS),
                     st.text(max_size=40), st.integers(min_value=-2**70, max_value=2**70).map(str))


def argv_for(command: str, action: argparse.Action, value: str, bare: bool) -> list[str]:
    """The command line: the command's base options, the fuzzed one, then its positionals."""
    base, positional = list(BASE[command]), list(POSITIONAL.get(command, []))
    if not action.option_strings:  # the positional itself is fuzzed
        return [command, *base, "--", value]
    flag = action.option_strings[0]
    if flag in base:  # replace the base's value of that option
        i = base.index(flag)
        del base[i:i + 2]
    fuzzed = [flag] if bare and action.nargs == 0 else [f"{flag}={value}"]
    return [command, *base, *fuzzed, "--", *positional] if positional else [command, *base, *fuzzed]


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny run (2 steps) and its story file, the working directory of every example; the
    expensive steps stubbed out; no network."""
    from minigpt import ModelConfig, TrainConfig, train

    root = tmp_path_factory.mktemp("cli-properties")
    story = write_txt(root / "stories.txt", make_stories(60))
    train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1),
          TrainConfig(data=[story], batch_size=4, max_steps=2, eval_interval=2, eval_batches=1,
                      sample_chars=5, threads=1, warmup_steps=1), root / "run", log=lambda *a: None)
    import importlib

    import matplotlib
    matplotlib.use("Agg")
    importlib.import_module("minigpt.serve")  # fastapi is a test dependency
    with pytest.MonkeyPatch.context() as mp:
        for where, name in STUBS:
            mp.setattr(_resolve(where), name, _reached)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.chdir(root)
        yield root


def _resolve(dotted: str):
    """The module or class a dotted name names (minigpt.engine.Engine, matplotlib.figure.Figure)."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def run_main(argv: list[str]) -> tuple[object, str]:
    """(exit code or Reached, stderr) of main(argv), in this process."""
    from minigpt.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors (and --help)
            code = exc.code
        except Reached:
            code = Reached
        finally:
            import matplotlib.pyplot as plt
            plt.close("all")  # the stubbed savefig leaves its figure open
    return code, err.getvalue()


COMMANDS = subcommands()
# 40 fixed examples per command (about 15 s in all); MINIGPT_CLI_EXAMPLES=500 searches afresh.
SEARCH = "MINIGPT_CLI_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("MINIGPT_CLI_EXAMPLES", 40))


def test_every_sub_command_and_option_is_fuzzed():
    assert set(COMMANDS) == set(BASE), "a new sub-command: give it a BASE entry"
    assert sum(len(fuzzed_actions(p)) for p in COMMANDS.values()) > 80


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_refuses_edge_values_in_one_line_or_reaches_its_work(workspace, command):
    actions = fuzzed_actions(COMMANDS[command])

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not SEARCH,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        action = data.draw(st.sampled_from(actions), label="option")
        value = data.draw(values_for(action), label="value")
        argv = argv_for(command, action, value, bare=data.draw(st.booleans(), label="bare"))
        before = digest(workspace)
        code, err = run_main(argv)
        assert "Traceback" not in err, (argv, err)
        if code is not Reached and code != 0:
            assert code == 2, (argv, code, err)
            assert len(err.splitlines()) == 1, (argv, err)
            assert err.startswith("minigpt"), (argv, err)
        assert digest(workspace) == before, argv

    check()


@pytest.mark.parametrize("argv", [
    ["train", "--data", "stories.txt", "--epochs", "inf"], ["train", "--data", "stories.txt", "--seed",
                                                             str(2**64)],
    ["train", "--data", "stories.txt", "--batch-size", str(2**40)],
    ["train", "--data", "stories.txt", "--threads", str(2**32)],
    ["train", "--data", "stories.txt", "--weight-decay", "nan"],
    ["train", "--data", "stories.txt", "--device", "tpu"], ["train", "--data", "stories.txt", "--resume", ""],
    ["train", "--data", "stories.txt", "--config", "run"],
    ["train", "--data", "stories.txt", "--keep-checkpoints", str(10**20)],
    ["train", "--data", "stories.txt", "--block-size", "200000"],
    ["summary", "--block-size", "200000"], ["summary", "--n-layers", "4000", "--n-embd", "4096"],
    ["generate", "--checkpoint", "run", "--", "\U0001F600\u05e9\u4f60"],
    ["eval", "--checkpoint", "run", "--data", "stories.txt", "--max-chars=-5"],
    ["generate", "--checkpoint", "run", "--device", "cuda:99"], ["next", "--checkpoint", "run",
                                                                 "--temperature", "nan"],
    ["report", "--checkpoint", "run", "--seed", str(2**64)],
])
def test_the_failures_issue_19_names_are_refused(workspace, argv):
    code, err = run_main(argv)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)


TOML_VALUES = ["inf", "-inf", "nan", "1e308", "-1e308", "-1", "0", str(2**63 - 1), str(-2**63),
               '""', '"' + "x" * 5000 + '"', '"\U0001F600"', "true", "[]", '[""]', "[1, 2]", "{a = 1}",
               "1979-05-27", '"inf"', '"-1"', '"cuda:99"', "0.5", "1"]


def toml_keys() -> list[tuple[str, str]]:
    """(table, key) for every field of every config dataclass: each is a TOML key."""
    from dataclasses import fields

    from minigpt.config import ModelConfig, SampleConfig, TrainConfig

    return [(table, f.name) for table, cls in (("model", ModelConfig), ("train", TrainConfig),
                                               ("sample", SampleConfig)) for f in fields(cls)]


@settings(max_examples=EXAMPLES * 2, deadline=None, database=None, derandomize=not SEARCH,
          suppress_health_check=list(HealthCheck))
@given(key=st.sampled_from(toml_keys()), value=st.sampled_from(TOML_VALUES), flat=st.booleans())
def test_every_toml_key_refuses_edge_values_in_one_line_or_reaches_training(workspace, tmp_path_factory,
                                                                          key, value, flat):
    table, name = key
    config = tmp_path_factory.mktemp("toml") / "edge.toml"  # outside the workspace
    config.write_text(f"{name} = {value}\n" if flat else f"[{table}]\n{name} = {value}\n", encoding="utf-8")
    before = digest(workspace)
    code, err = run_main(["train", "--data", "stories.txt", "--config", str(config)])
    assert "Traceback" not in err, (name, value, err)
    assert code is Reached or (code == 2 and len(err.splitlines()) == 1), (name, value, code, err)
    assert digest(workspace) == before
