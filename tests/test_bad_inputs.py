"""Every bad input gets a one-line error, a non-zero exit, no traceback, and changes no file.

TABLE is the list of cases: where the input goes (CLI or Python API), what is wrong, and the text
the error must contain. docs/bad-inputs.md is rendered from it:

    python tests/test_bad_inputs.py > docs/bad-inputs.md
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

NEW = ["--out", "{d}/new"]
RUN = ["--checkpoint", "{d}/run"]

# (surface, what is wrong, arguments or API call, expected text in the error)
TABLE = [
    # data files
    ("cli", "data file does not exist", ["train", "--data", "{d}/nope.txt", *NEW], "not found"),
    ("cli", "empty data file", ["train", "--data", "{d}/empty.txt", *NEW], "no text found"),
    ("cli", "only emoji and whitespace", ["train", "--data", "{d}/emoji.txt", *NEW], "no text found"),
    ("cli", "binary file", ["train", "--data", "{d}/bin.txt", *NEW], "binary"),
    ("cli", "Latin-1 text (wrong encoding)", ["train", "--data", "{d}/latin1.txt", *NEW], "not UTF-8"),
    ("cli", "UTF-16 text (wrong encoding)", ["train", "--data", "{d}/utf16.txt", *NEW], "binary"),
    ("cli", "huge single line of control bytes", ["train", "--data", "{d}/huge.txt", *NEW],
     "no text found"),
    ("cli", "invalid JSON line", ["train", "--data", "{d}/bad.jsonl", *NEW], "line 2 is not valid JSON"),
    ("cli", "JSON line that is a number", ["train", "--data", "{d}/number.jsonl", *NEW],
     "expected a string or an object"),
    ("cli", "JSON lines without a text field", ["train", "--data", "{d}/nofield.jsonl", *NEW],
     "\"text\" string field"),
    ("cli", "truncated .json", ["train", "--data", "{d}/bad.json", *NEW], "not valid JSON"),
    ("cli", ".json object instead of a list", ["train", "--data", "{d}/object.json", *NEW],
     "expected a JSON list"),
    ("cli", ".parquet that is not parquet", ["train", "--data", "{d}/fake.parquet", *NEW],
     "not a readable parquet file"),
    ("cli", ".parquet without a text column", ["train", "--data", "{d}/notext.parquet", *NEW],
     "has no \"text\" column"),
    ("cli", "unsupported file type", ["train", "--data", "{d}/data.csv", *NEW], "unsupported file type"),
    ("cli", "directory without data files", ["train", "--data", "{d}/emptydir", *NEW], "holds no"),
    ("cli", "data shorter than block_size", ["train", "--data", "{d}/short.txt", *NEW],
     "fewer than block_size"),
    ("cli", "empty held-out data", ["train", "--data", "{story}", "--val-data", "{d}/empty.txt", *NEW],
     "no text found in --val-data"),
    ("cli", "max_chars zero", ["train", "--max-chars", "0", *NEW], "max_chars must be a positive"),
    # issue 19: odd files and damaged runs
    ("cli", "data file is a FIFO (named pipe)", ["train", "--data", "{d}/odd/fifo.txt", *NEW],
     "is a FIFO (named pipe), not a regular file"),
    ("cli", "data file is a device", ["train", "--data", "/dev/zero", *NEW], "is a character device"),
    ("cli", "config file is a FIFO", ["train", "--config", "{d}/odd/fifo.toml", *NEW], "is a FIFO"),
    ("cli", "JSON nested 100000 deep", ["train", "--data", "{d}/odd/deep.json", *NEW],
     "nests JSON more than 100 levels"),
    ("cli", ".parquet text column of integers", ["train", "--data", "{d}/odd/ints.parquet", *NEW],
     "not strings"),
    ("cli", "tokenizer.json with chars as a number", ["generate", "--checkpoint", "{d}/oddtokenizer"],
     "needs a \"chars\" list, got 5"),
    ("cli", "config.json with n_embd \"abc\"", ["generate", "--checkpoint", "{d}/oddconfig"],
     "n_embd must be of type int, got 'abc'"),
    ("cli", "weights holding NaN", ["generate", "--checkpoint", "{d}/nanweights"], "NaN or infinite"),
    ("cli", "truncated val.bin", ["report", "--checkpoint", "{d}/truncval", "--stories", "1"],
     "meta.json recorded"),
    ("cli", "truncated train.bin on resume", ["train", "--resume", "{d}/trunctrain"],
     "meta.json recorded"),
    # config files
    ("cli", "config file does not exist", ["train", "--config", "{d}/none.toml", *NEW], "does not exist"),
    ("cli", "config file is not TOML", ["train", "--config", "{d}/bad.toml", *NEW], "not valid TOML"),
    ("cli", "config file with an unknown key", ["train", "--config", "{d}/unknown.toml", *NEW],
     "unknown key 'n_layerz'"),
    ("cli", "config value of the wrong type", ["train", "--config", "{d}/types.toml", *NEW],
     "must be of type float"),
    ("cli", "config data is not a list", ["train", "--config", "{d}/datatype.toml", *NEW],
     "must be of type list[str]"),
    ("cli", "config with num_heads not dividing n_embd", ["train", "--config", "{d}/heads.toml", *NEW],
     "must divide n_embd"),
    ("cli", "config with negative dropout", ["train", "--config", "{d}/dropout.toml", *NEW],
     "dropout must be in"),
    # training options
    ("cli", "num_heads does not divide n_embd", ["train", "--num-heads", "3", *NEW], "must divide n_embd"),
    ("cli", "block_size zero", ["train", "--block-size", "0", *NEW], "block_size must be a positive"),
    ("cli", "negative n_embd", ["train", "--n-embd=-8", *NEW], "n_embd must be a positive"),
    ("cli", "n_layers zero", ["train", "--n-layers", "0", *NEW], "n_layers must be a positive"),
    ("cli", "ff_hidden_mult zero", ["train", "--ff-hidden-mult", "0", *NEW], "ff_hidden_mult must be"),
    ("cli", "dropout above 1", ["train", "--dropout", "1.5", *NEW], "dropout must be in"),
    ("cli", "negative batch_size", ["train", "--batch-size=-4", *NEW], "batch_size must be a positive"),
    ("cli", "learning_rate zero", ["train", "--learning-rate", "0", *NEW], "learning_rate must be > 0"),
    ("cli", "epochs zero", ["train", "--epochs", "0", *NEW], "epochs must be > 0"),
    ("cli", "max_steps zero", ["train", "--max-steps", "0", *NEW], "max_steps must be a positive"),
    ("cli", "unreadable max_time", ["train", "--max-time", "soon", *NEW], "cannot read duration"),
    ("cli", "negative max_time", ["train", "--max-time=-5m", *NEW], "cannot read duration"),
    ("cli", "unknown device", ["train", "--device", "tpu", *NEW], "device must be"),
    ("cli", "threads zero", ["train", "--threads", "0", *NEW], "threads must be a positive"),
    ("cli", "eval_interval zero", ["train", "--eval-interval", "0", *NEW], "eval_interval must be"),
    ("cli", "keep_checkpoints zero", ["train", "--keep-checkpoints", "0", *NEW], "keep_checkpoints must"),
    ("cli", "not a number", ["train", "--n-layers", "two"], "invalid int value"),
    ("cli", "unknown attention kind", ["train", "--attention", "flash"], "invalid choice"),
    ("cli", "unknown optimizer", ["train", "--optimizer", "sgd", *NEW], "invalid choice"),
    ("cli", "Muon momentum of 1", ["train", "--muon-momentum", "1", *NEW],
     "muon_momentum must be in [0, 1)"),
    ("cli", "run directory already holds a run", ["train", "--data", "{story}", "--out", "{d}/run"],
     "already holds a run"),
    ("cli", "run directory under a file", ["train", "--data", "{story}", "--out", "{d}/empty.txt/run"],
     "cannot write to run directory"),
    ("cli", "resume a directory that does not exist", ["train", "--resume", "{d}/nope"], "does not exist"),
    ("cli", "resume a directory that is not a run", ["train", "--resume", "{d}/emptydir"],
     "config.json is missing"),
    ("cli", "resume with a changed model option", ["train", "--resume", "{d}/run", "--n-layers", "8"],
     "n_layers cannot change"),
    # issue 19: edge values
    ("cli", "epochs infinite", ["train", "--epochs", "inf", *NEW], "epochs must be a finite number"),
    ("cli", "seed past 64 bits", ["train", "--seed", "18446744073709551616", *NEW],
     "seed must be between 0 and 9223372036854775807"),
    ("cli", "batch_size 2^40", ["train", "--batch-size", "1099511627776", *NEW],
     "batch_size must be between 1 and"),
    ("cli", "threads 2^32", ["train", "--threads", "4294967296", *NEW], "threads must be between 1 and 1024"),
    ("cli", "weight_decay nan", ["train", "--weight-decay", "nan", *NEW], "weight_decay must be a finite"),
    ("cli", "learning_rate 1e308", ["train", "--learning-rate", "1e308", *NEW],
     "learning_rate must be at most"),
    ("cli", "config with beta1 = 2.0", ["train", "--config", "{d}/beta.toml", *NEW], "beta1 must be in"),
    ("cli", "empty device", ["generate", *RUN, "--device", ""], "device must be auto, cpu"),
    ("cli", "config names a directory", ["train", "--config", "{d}/emptydir", *NEW], "directory"),
    ("cli", "a model needing more memory than the machine", ["train", "--block-size", "200000", *NEW],
     "GiB of memory"),
    ("cli", "summary of a model needing more memory than the machine",
     ["summary", "--block-size", "200000"], "GiB of memory"),
    ("cli", "empty --resume", ["train", "--resume", ""], "--resume is empty"),
    ("cli", "keep_checkpoints 1e20", ["train", "--keep-checkpoints", "100000000000000000000", *NEW],
     "keep_checkpoints must be between 1 and"),
    ("cli", "prompt only of characters cleaning drops", ["generate", *RUN, "\U0001F600\u05e9\u4f60"],
     "vocabulary has no"),
    ("cli", "negative --max-chars", ["eval", *RUN, "--data", "{story}", "--max-chars=-5"],
     "--max-chars must be a positive integer"),
    ("cli", "temperature nan", ["next", *RUN, "--temperature", "nan"], "temperature must be a finite"),
    ("cli", "report seed past 64 bits", ["report", *RUN, "--seed", "18446744073709551616"],
     "seed must be between 0"),
    # issue 20: schedule
    ("cli", "unknown schedule", ["train", "--schedule", "linear", *NEW], "invalid choice"),
    ("cli", "decay_fraction zero", ["train", "--schedule", "wsd", "--decay-fraction", "0", *NEW],
     "decay_fraction must be in (0, 1]"),
    # generation
    ("cli", "top_p zero", ["generate", *RUN, "--top-p", "0"], "top_p must be in"),
    ("cli", "top_p above 1", ["generate", *RUN, "--top-p", "1.2"], "top_p must be in"),
    ("cli", "negative temperature", ["generate", *RUN, "--temperature=-1"], "temperature must be >= 0"),
    ("cli", "top_k zero", ["generate", *RUN, "--top-k", "0"], "top_k must be a positive"),
    ("cli", "negative max_new_tokens", ["generate", *RUN, "--max-new-tokens=-1"],
     "max_new_tokens must be >= 0"),
    ("cli", "num_samples zero", ["generate", *RUN, "--num-samples", "0"], "num_samples must be a positive"),
    ("cli", "prompt character outside the vocabulary", ["generate", *RUN, "Hello #"], "'#'"),
    ("cli", "pickle checkpoint", ["generate", "--checkpoint", "{d}/model.pt"],
     "pickle checkpoints are never loaded"),
    ("cli", "checkpoint does not exist", ["generate", "--checkpoint", "{d}/nope"], "does not exist"),
    ("cli", "checkpoint is a file", ["generate", "--checkpoint", "{d}/empty.txt"], "not a run directory"),
    ("cli", "truncated weights", ["generate", "--checkpoint", "{d}/truncated"], "truncated or corrupted"),
    ("cli", "bit-flipped weights", ["generate", "--checkpoint", "{d}/flipped"], "is corrupted"),
    ("cli", "weights from another model shape", ["generate", "--checkpoint", "{d}/mismatch"],
     "does not match config.json"),
    ("cli", "damaged config.json", ["generate", "--checkpoint", "{d}/badconfig"], "is damaged"),
    ("cli", "missing tokenizer.json", ["generate", "--checkpoint", "{d}/notokenizer"], "is missing"),
    ("cli", "Hub model while offline", ["generate", "--checkpoint", "someone/story-model"],
     "cannot be reached"),
    ("cli", "report with zero stories", ["report", *RUN, "--stories", "0"],
     "--stories must be a positive integer"),
    ("cli", "export onto an existing model", ["export", *RUN, "--out", "{d}/run"], "already holds"),
    ("cli", "bpe vocabulary too small", ["train", "--data", "{story}", "--tokenizer", "bpe",
                                         "--vocab-size", "100", "--out", "{d}/bpe"], "between 257"),
    ("cli", "vocabulary size for characters", ["train", "--data", "{story}", "--vocab-size", "500",
                                               "--out", "{d}/v"], "--vocab-size is for"),
    ("cli", "negative max_new_chars", ["generate", *RUN, "--max-new-chars=-5"],
     "max_new_chars must be >= 0"),
    # issue 19: run directories
    ("cli", "export into a run's checkpoints folder", ["export", *RUN, "--out", "{d}/run/checkpoints"],
     "is inside the training run"),
    ("cli", "export into a new folder inside a run",
     ["export", *RUN, "--out", "{d}/run/checkpoints/model"], "is inside the training run"),
    ("cli", "export --force onto another run", ["export", *RUN, "--out", "{d}/truncated", "--force"],
     "already holds a training run"),
    ("cli", "export into a folder holding other files", ["export", *RUN, "--out", "{d}"],
     "already holds files"),
    ("cli", "export onto a file", ["export", *RUN, "--out", "{d}/empty.txt"], "is a file"),
    ("cli", "export under a file", ["export", *RUN, "--out", "{d}/empty.txt/model"],
     "cannot write the model to"),
    ("cli", "export with a missing model card", ["export", *RUN, "--out", "{d}/new", "--card",
                                                 "{d}/nope.md"], "--card"),
    # issue 22: transformers
    ("cli", "export --format transformers into a folder holding other files",
     ["export", *RUN, "--out", "{d}", "--format", "transformers"], "already holds files"),
    ("cli", "export in an unknown format", ["export", *RUN, *NEW, "--format", "onnx"], "invalid choice"),
    ("cli", "a transformers export given as a checkpoint", ["generate", "--checkpoint", "{d}/hfmodel", "Once"],
     "is a transformers model"),
    # serving
    ("cli", "serve with no rows in the batch", ["serve", *RUN, "--max-batch", "0"],
     "--max-batch must be a positive integer"),
    ("cli", "serve with a negative queue", ["serve", *RUN, "--max-waiting=-1"],
     "--max-waiting must be >= 0"),
    ("cli", "serve on port 0", ["serve", *RUN, "--port", "0"], "--port must be between 1 and 65535"),
    # evaluation
    ("cli", "evaluate on empty data", ["eval", *RUN, "--data", "{d}/empty.txt"], "no text to evaluate"),
    ("cli", "evaluate without data", ["eval", *RUN], "--data"),
    ("cli", "evaluate on a missing file", ["eval", *RUN, "--data", "{d}/nope.txt"], "not found"),
    # Python API
    ("api", "load() a pickle file", "load_pickle", "pickle checkpoints are never loaded"),
    ("api", "generate() with an unknown character", "generate_unknown", "'#'"),
    ("api", "generate() with top_p = 2", "generate_top_p", "top_p must be in"),
    ("api", "evaluate() on a missing file", "evaluate_missing", "not found"),
    ("api", "train() with num_heads not dividing n_embd", "train_heads", "must divide n_embd"),
    ("api", "train() with no data", "train_no_data", "no training data given"),
    ("api", "train(resume=True) on a non-run directory", "train_resume_empty", "config.json is missing"),
]


def api_call(name: str, d: Path, story: str):
    from minigpt import ModelConfig, TrainConfig, evaluate, generate, load, train

    quiet = dict(log=lambda *a: None)
    if name == "load_pickle":
        return load(d / "model.pt")
    model, tokenizer, _ = load(d / "run", "cpu")
    calls = {
        "generate_unknown": lambda: generate(model, tokenizer, "Hi #"),
        "generate_top_p": lambda: generate(model, tokenizer, "Hi", top_p=2.0),
        "evaluate_missing": lambda: evaluate(model, tokenizer, str(d / "nope.txt")),
        "train_heads": lambda: train(ModelConfig(num_heads=3), TrainConfig(data=[story]), d / "new", **quiet),
        "train_no_data": lambda: train(None, TrainConfig(data=[]), d / "new", **quiet),
        "train_resume_empty": lambda: train(None, None, d / "emptydir", resume=True, **quiet),
    }
    return calls[name]()


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_run):
    """A workspace holding one good run and every kind of bad file, made once for all rows: every
    row checks that it changed nothing in it, so sharing it is safe."""
    tmp_path = tmp_path_factory.mktemp("ws")
    shutil.copytree(tiny_run, tmp_path / "run")
    files = {
        "empty.txt": b"", "emoji.txt": "\U0001F600 \n\n \t\n".encode(), "short.txt": b"Hi.",
        "bin.txt": b"\x00\x01\x02\xff" * 10, "latin1.txt": "caf\u00e9 au lait".encode("latin-1"),
        "utf16.txt": "Once upon a time".encode("utf-16"), "huge.txt": b"\x01" * 5_000_000,
        "bad.jsonl": b'{"text": "ok"}\n{oops\n', "number.jsonl": b"42\n",
        "nofield.jsonl": b'{"story": "x"}\n', "bad.json": b"[1, 2", "object.json": b'{"a": 1}',
        "fake.parquet": b"PAR1 not really", "data.csv": b"text\nhello\n",
        "bad.toml": b"n_layers = \n", "unknown.toml": b"n_layerz = 3\n",
        "types.toml": b'[train]\nlearning_rate = "high"\n', "datatype.toml": b"[train]\ndata = 5\n",
        "heads.toml": b"[model]\nnum_heads = 5\n", "dropout.toml": b"[model]\ndropout = -0.1\n", "beta.toml": b"[train]\nbeta1 = 2.0\n",
        "model.pt": b"\x80\x04\x95pickle",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"story": ["a", "b"]}), tmp_path / "notext.parquet")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "hfmodel").mkdir()  # what `minigpt export --format transformers` writes, in short
    (tmp_path / "hfmodel" / "config.json").write_text('{"model_type": "gpt2", "n_embd": 32}')
    weights = (tiny_run / "model.safetensors").read_bytes()
    for name, change in {
        "truncated": lambda r: (r / "model.safetensors").write_bytes(weights[:500]),
        "flipped": lambda r: (r / "model.safetensors").write_bytes(
            weights[:-10] + bytes([weights[-10] ^ 0xFF]) + weights[-9:]),
        "mismatch": lambda r: (r / "config.json").write_text(json.dumps(
            {**json.loads((r / "config.json").read_text()),
             "model": {**json.loads((r / "config.json").read_text())["model"], "n_embd": 64}})),
        "badconfig": lambda r: (r / "config.json").write_text("{not json"),
        "notokenizer": lambda r: (r / "tokenizer.json").unlink(),
    }.items():
        shutil.copytree(tiny_run, tmp_path / name)
        change(tmp_path / name)
    # issue 19: odd files and damaged runs (special files in odd/, so no row reading {d} meets them)
    from minigpt.checkpoint import read_tensors, write_tensors
    (tmp_path / "odd").mkdir()
    os.mkfifo(tmp_path / "odd" / "fifo.txt")
    os.mkfifo(tmp_path / "odd" / "fifo.toml")
    (tmp_path / "odd" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "odd" / "ints.parquet")
    nan = {k: v.clone() for k, v in read_tensors(tiny_run / "model.safetensors").items()}
    next(v for v in nan.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    for name, change in {
        "oddtokenizer": lambda r: (r / "tokenizer.json").write_text(json.dumps(
            {**json.loads((r / "tokenizer.json").read_text()), "chars": 5})),
        "oddconfig": lambda r: (r / "config.json").write_text(json.dumps(
            {**json.loads((r / "config.json").read_text()),
             "model": {**json.loads((r / "config.json").read_text())["model"], "n_embd": "abc"}})),
        "nanweights": lambda r: write_tensors(r / "model.safetensors", nan),
        "truncval": lambda r: (r / "data" / "val.bin").write_bytes((r / "data" / "val.bin").read_bytes()[:-7]),
        "trunctrain": lambda r: (r / "data" / "train.bin").write_bytes(
            (r / "data" / "train.bin").read_bytes()[:-7]),
    }.items():
        shutil.copytree(tiny_run, tmp_path / name)
        change(tmp_path / name)
    return tmp_path


def digest(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("surface, what, call, expected", TABLE, ids=[row[1] for row in TABLE])
def test_bad_input(ws, story_file, capsys, monkeypatch, surface, what, call, expected):
    from minigpt import UserError
    from minigpt.cli import main

    monkeypatch.chdir(ws)  # so no command finds a ./runs of the developer's
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = digest(ws)
    if surface == "api":
        with pytest.raises(UserError, match=None) as info:
            api_call(call, ws, story_file)
        assert expected in str(info.value) and "\n" not in str(info.value)
    else:
        try:
            code = main([a.format(d=ws, story=story_file) for a in call])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2, err
        assert expected in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert digest(ws) == before


def test_docs_bad_inputs_md_is_this_table_rendered():
    assert (ROOT / "docs" / "bad-inputs.md").read_text(encoding="utf-8") == markdown()


@pytest.mark.parametrize("args", [["generate", "--checkpoint", "/nonexistent/run"],
                                  ["train", "--num-heads", "3"]])
def test_real_process_prints_one_line_and_exits_2(args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "minigpt", *args], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def markdown() -> str:
    lines = ["# Bad inputs and their answers", "",
             "Rendered from `tests/test_bad_inputs.py`, which runs every row and checks: exit code 2",
             "(or a `UserError` from the Python API), a one-line message containing the text below, no",
             "traceback, and no file changed. Regenerate with",
             "`python tests/test_bad_inputs.py > docs/bad-inputs.md`.", "",
             "| # | where | what is wrong | input | the error says |", "|---|---|---|---|---|"]
    for i, (surface, what, call, expected) in enumerate(TABLE, 1):
        shown = "minigpt " + " ".join(call) if surface == "cli" else f"`{call}` (see api_call)"
        shown = shown.replace("{d}/", "").replace("{story}", "stories.txt").replace("|", "\\|")
        if surface == "cli":
            shown = f"`{shown}`"
        lines.append(f"| {i} | {surface.upper()} | {what} | {shown} | {expected.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
