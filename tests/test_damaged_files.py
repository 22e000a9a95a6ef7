"""Odd files and damaged run directories: refused with one line naming the file, nothing changed.

FIFOs, sockets and devices are refused before they are opened (opening a FIFO blocks forever),
JSON nests at most files.MAX_JSON_DEPTH levels, parquet text columns must hold strings, and every
file of a run directory is checked on load (tokenizer.json, config.json, state.json, the
weights, data/train.bin, data/val.bin, meta.json). A case that would hang fails by timeout: the
call runs in a thread, and a FIFO still blocked after the timeout is opened for writing to free it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DEEP = 100_000


def digest(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def refused(call, *expected: str, fifo: Path | None = None, timeout: float = 60.0) -> str:
    """Run `call()` in a thread; it must raise a one-line UserError containing `expected` within
    `timeout` seconds. Returns the message."""
    from minigpt import UserError

    outcome: dict = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if fifo is not None:  # free the reader so the thread can end
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail(f"still running after {timeout} s (blocked on opening a special file?)")
    error = outcome.get("error")
    assert isinstance(error, UserError), f"expected a UserError, got {error!r} / {outcome.get('value')!r}"
    message = str(error)
    assert "\n" not in message, message
    for text in expected:
        assert text in message, message
    return message


def stories_of(spec: str) -> list[str]:
    from minigpt.data import iter_stories

    return list(iter_stories(spec, log=lambda *a: None))


@pytest.fixture
def short_tmp():
    """A short directory under /tmp: a unix socket's path must stay under ~100 characters."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="mg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run(tmp_path, tiny_run):
    """A copy of the tiny trained run to damage."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


# ---------------------------------------------------------------- special files as user paths


def test_a_fifo_as_data_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "stories.txt"
    os.mkfifo(fifo)
    refused(lambda: stories_of(str(fifo)), str(fifo), "FIFO", "not a regular file", fifo=fifo)


@pytest.mark.slow
def test_a_fifo_as_data_in_a_real_process_exits_2_at_once(tmp_path):
    fifo = tmp_path / "stories.txt"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    try:
        result = subprocess.run([sys.executable, "-m", "minigpt", "train", "--data", str(fifo),
                                 "--out", str(tmp_path / "new")], capture_output=True, text=True,
                                env=env, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("`minigpt train --data FIFO` hung")
    assert result.returncode == 2, result.stderr
    assert "FIFO" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_a_unix_socket_as_data_is_refused(short_tmp):
    path = short_tmp / "s.txt"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        refused(lambda: stories_of(str(path)), str(path), "a socket")
    finally:
        server.close()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_by_name_and_through_a_link(tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    refused(lambda: stories_of(device), device, "character device")
    link = tmp_path / "stories.txt"  # a supported suffix does not make it a file
    link.symlink_to(device)
    refused(lambda: stories_of(str(link)), "character device")


def test_special_files_inside_a_data_directory_are_skipped(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("Once upon a time there was a cat.\n\nThe end came soon.\n")
    os.mkfifo(folder / "b.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    assert stories_of(str(folder)) == ["Once upon a time there was a cat.", "The end came soon.\n"]


def test_a_fifo_as_val_data_and_as_config_is_refused(tmp_path, story_file):
    from minigpt import TrainConfig
    from minigpt.config import load_toml
    from minigpt.data import prepare_data

    fifo = tmp_path / "held.jsonl"
    os.mkfifo(fifo)
    cfg = TrainConfig(data=[story_file], val_data=[str(fifo)])
    refused(lambda: prepare_data(cfg, tmp_path / "data", log=lambda *a: None), "FIFO", fifo=fifo)
    toml = tmp_path / "config.toml"
    os.mkfifo(toml)
    refused(lambda: load_toml(toml), "config file", str(toml), "FIFO", fifo=toml)


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "model.safetensors"])
def test_a_fifo_in_a_run_directory_is_refused(run, name):
    from minigpt.checkpoint import load_model

    (run / name).unlink()
    os.mkfifo(run / name)
    refused(lambda: load_model(run), str(run / name), "FIFO", fifo=run / name)


@pytest.mark.parametrize("name", ["metrics.jsonl", "data/train.bin", "data/meta.json"])
def test_a_fifo_among_a_runs_logs_and_data_is_refused(run, name):
    from minigpt.data import load_splits
    from minigpt.pretrained import run_summary
    from minigpt.tokenizer import load_tokenizer

    (run / name).unlink()
    os.mkfifo(run / name)
    if name == "metrics.jsonl":
        call = lambda: run_summary(run)  # noqa: E731 - what serve and export show
    else:
        call = lambda: load_splits(run / "data", load_tokenizer(run / "tokenizer.json"))  # noqa: E731
    refused(call, str(run / name), "FIFO", fifo=run / name)


def test_a_fifo_for_samples_txt_on_resume_changes_no_log(run, capsys):
    from minigpt.cli import main

    from minigpt.checkpoint import checkpoint_dirs

    shutil.rmtree(checkpoint_dirs(run)[0])  # resume from the one before: metrics would be cut
    (run / "samples.txt").unlink()
    os.mkfifo(run / "samples.txt")
    before = digest(run)
    code = []
    thread = threading.Thread(target=lambda: code.append(main(["train", "--resume", str(run),
                                                               "--max-steps", "130"])), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        os.close(os.open(run / "samples.txt", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("resume blocked on a FIFO samples.txt")
    err = capsys.readouterr().err
    assert code == [2] and "samples.txt is a FIFO" in err, err
    assert digest(run) == before  # metrics.jsonl was not rewritten either


def test_a_link_loop_and_an_oversized_json_file_are_refused(run, tmp_path):
    from minigpt.checkpoint import load_model
    from minigpt.files import read_json

    (run / "tokenizer.json").unlink()
    (run / "tokenizer.json").symlink_to(run / "tokenizer.json")
    refused(lambda: load_model(run), str(run / "tokenizer.json"), "cannot be read")
    (tmp_path / "big.json").write_text("[" + "1, " * 100 + "1]")
    refused(lambda: read_json(tmp_path / "big.json", max_bytes=100), "big.json is", "MB, more than")


# ---------------------------------------------------------------- nesting, parquet types


def test_json_nested_100000_deep_is_refused_everywhere(tmp_path, run):
    from minigpt.checkpoint import load_model
    from minigpt.config import load_toml
    from minigpt.runlog import read_metrics

    deep = "[" * DEEP + "]" * DEEP
    (tmp_path / "deep.json").write_text(deep)
    refused(lambda: stories_of(str(tmp_path / "deep.json")), "deep.json", "nests JSON more than 100")
    (tmp_path / "deep.jsonl").write_text('{"text": "fine"}\n' + deep + "\n")
    refused(lambda: stories_of(str(tmp_path / "deep.jsonl")), "deep.jsonl line 2", "nests JSON")
    (tmp_path / "deep.toml").write_text("data = " + deep + "\n")
    refused(lambda: load_toml(tmp_path / "deep.toml"), "deep.toml", "too deeply")
    # brackets inside strings do not count
    (tmp_path / "brackets.jsonl").write_text(json.dumps({"text": "[" * 500 + " a story"}) + "\n")
    assert stories_of(str(tmp_path / "brackets.jsonl")) == ["[" * 500 + " a story"]
    before = digest(run)
    for name in ("tokenizer.json", "config.json"):
        good = (run / name).read_text()
        (run / name).write_text('{"kind": ' + deep + "}")
        refused(lambda: load_model(run), str(run / name), "nests JSON")
        (run / name).write_text(good)
    with open(run / "metrics.jsonl", "a") as f:  # the reader skips such a line, as a torn one
        f.write(deep + "\n")
    assert read_metrics(run)[-1]["step"] == 120
    assert {k: v for k, v in digest(run).items() if k != "metrics.jsonl"} == \
        {k: v for k, v in before.items() if k != "metrics.jsonl"}


def test_an_integer_past_pythons_digit_limit_is_refused(tmp_path):
    from minigpt.config import load_toml

    (tmp_path / "big.jsonl").write_text("1" * 5000 + "\n")
    refused(lambda: stories_of(str(tmp_path / "big.jsonl")), "big.jsonl line 1", "4300 digits")
    (tmp_path / "big.json").write_text('[{"text": "a"}, ' + "1" * 5000 + "]")
    refused(lambda: stories_of(str(tmp_path / "big.json")), "big.json", "4300 digits")
    (tmp_path / "big.toml").write_text("n_embd = " + "1" * 5000 + "\n")
    refused(lambda: load_toml(tmp_path / "big.toml"), "big.toml", "4300 digits")


@pytest.mark.parametrize("values, kind", [([1, 2, 3], "int64"), ([b"Once", b"upon"], "binary")])
def test_a_parquet_text_column_that_is_not_strings_is_refused(tmp_path, values, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": values}), tmp_path / "stories.parquet")
    refused(lambda: stories_of(str(tmp_path / "stories.parquet")), "stories.parquet", kind,
            "not strings")


def test_a_dictionary_encoded_parquet_text_column_is_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.array(["a story", "another", "a story"]).dictionary_encode()
    pq.write_table(pa.table({"text": column}), tmp_path / "stories.parquet")
    assert stories_of(str(tmp_path / "stories.parquet")) == ["a story", "another", "a story"]


# ---------------------------------------------------------------- tokenizer.json


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


CHAR_EDITS = {
    "chars a number": (lambda d: d.update(chars=5), "\"chars\" list, got 5"),
    "chars not strings": (lambda d: d.update(chars=[1, 2]), "strings only, got 1"),
    "a char twice": (lambda d: d["chars"].append(d["chars"][0]), "twice"),
    "a chars entry of two letters": (lambda d: d["chars"].append("ab"), "single characters"),
    "kind a list": (lambda d: d.update(kind=["char"]), "unknown kind ['char']"),
    "eos_id out of range": (lambda d: d.update(eos_id=999), "eos_id must be 0, got 999"),
    "eos_id a boolean": (lambda d: d.update(eos_id=False), "eos_id must be 0, got False"),
}


@pytest.mark.parametrize("edit", CHAR_EDITS, ids=list(CHAR_EDITS))
def test_an_edited_char_tokenizer_json_names_the_file_and_field(run, edit):
    from minigpt.checkpoint import load_model

    change, expected = CHAR_EDITS[edit]
    _edit_json(run / "tokenizer.json", change)
    before = digest(run)
    refused(lambda: load_model(run), str(run / "tokenizer.json"), expected)
    assert digest(run) == before


def test_a_tokenizer_json_that_is_a_list_is_refused(run):
    from minigpt.tokenizer import load_tokenizer

    (run / "tokenizer.json").write_text("[1, 2]")
    refused(lambda: load_tokenizer(run / "tokenizer.json"), "tokenizer.json must hold a JSON object")


def test_edited_word_and_bpe_tokenizers_are_refused(tmp_path):
    from conftest import make_stories
    from minigpt.tokenizer import BPETokenizer, WordTokenizer, load_tokenizer

    stories = make_stories(50)
    path = tmp_path / "tokenizer.json"
    WordTokenizer.train(stories, 64).save(path)
    assert load_tokenizer(path).vocab_size > 4
    for change, expected in [(lambda d: d["words"].append(d["words"][-1]), "twice"),
                             (lambda d: d["words"].remove(" "), "lacks ' '"),
                             (lambda d: d.update(words={"a": 1}), "\"words\" list"),
                             (lambda d: d.update(unk_id=7), "unk_id must be 1")]:
        WordTokenizer.train(stories, 64).save(path)
        _edit_json(path, change)
        refused(lambda: load_tokenizer(path), str(path), expected)
    bpe = BPETokenizer.train(stories, 300)
    bpe.save(path)
    assert load_tokenizer(path).encode("Once upon a time") == bpe.encode("Once upon a time")
    for change, expected in [(lambda d: d["huggingface"]["model"].update(vocab=5), "vocab must be an object"),
                             (lambda d: d["huggingface"]["model"]["vocab"].update(zzz=99999), "ids must be 0.."),
                             (lambda d: d["huggingface"]["model"]["vocab"].update(zzz="1"), "must be integers"),
                             (lambda d: d["huggingface"]["model"].update(merges=7), "cannot be read"),
                             (lambda d: d.update(huggingface=[]), "\"huggingface\" object")]:
        bpe.save(path)
        _edit_json(path, change)
        refused(lambda: load_tokenizer(path), str(path), expected)


# ---------------------------------------------------------------- config.json, state.json


CONFIG_EDITS = {
    "n_embd a string": ("n_embd", "abc", "n_embd must be of type int, got 'abc'"),
    "n_embd negative": ("n_embd", -32, "n_embd must be a positive integer"),
    "n_embd null": ("n_embd", None, "n_embd must be of type int, got None"),
    "n_embd a list": ("n_embd", [32], "n_embd must be of type int, got [32]"),
    "n_layers a boolean": ("n_layers", True, "n_layers must be of type int, got True"),
    "dropout a string": ("dropout", "none", "dropout must be of type float"),
    "num_heads not dividing n_embd": ("num_heads", 5, "must divide n_embd"),
    "vocab_size zero": ("vocab_size", 0, "vocab_size must be a positive"),
    "n_embd wider than the weights": ("n_embd", 64, "does not match config.json"),
    # refused by ModelConfig's bounds where it has them, else by the shapes (no memory either way)
    "n_embd huge": ("n_embd", 2**20, "does not match config.json|n_embd must be"),
    "n_embd past torch": ("n_embd", 2**30, "does not match config.json|n_embd must be"),
}


@pytest.mark.parametrize("edit", CONFIG_EDITS, ids=list(CONFIG_EDITS))
def test_an_edited_config_json_names_the_file_and_field(run, edit):
    from minigpt.checkpoint import load_model

    key, value, expected = CONFIG_EDITS[edit]
    _edit_json(run / "config.json", lambda d: d["model"].update({key: value}))
    before = digest(run)
    message = refused(lambda: load_model(run))
    assert any(text in message for text in expected.split("|")), message
    assert str(run / "config.json") in message or str(run / "model.safetensors") in message
    assert digest(run) == before


def test_a_config_json_whose_model_is_not_an_object(run):
    from minigpt.checkpoint import load_model

    _edit_json(run / "config.json", lambda d: d.update(model=[1, 2]))
    refused(lambda: load_model(run), "config.json")


@pytest.mark.parametrize("content", ["[]", "null", '{"model": {}, "train": [1]}'])
def test_a_config_json_of_the_wrong_shape_is_refused_on_load_and_on_resume(run, capsys, content):
    from minigpt.checkpoint import load_model
    from minigpt.cli import main

    (run / "config.json").write_text(content)
    before = digest(run)
    refused(lambda: load_model(run), str(run / "config.json"))
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / "config.json") in err and len(err.strip().splitlines()) == 1, err
    assert digest(run) == before


def test_an_edited_state_json_is_named(run):
    from minigpt.checkpoint import checkpoint_dirs, latest_state

    state = checkpoint_dirs(run)[0] / "state.json"
    for value, expected in [("abc", "step must be an integer >= 0, got 'abc'"), (-1, "got -1"),
                            (True, "got True")]:
        _edit_json(state, lambda d: d.update(step=value))
        refused(lambda: latest_state(run), str(state), expected)
    state.write_text("[]")
    refused(lambda: latest_state(run), str(state), "not a JSON object")


# ---------------------------------------------------------------- weights and prepared data


def test_nan_or_inf_weights_are_refused_with_the_file_name(run, capsys, monkeypatch):
    from minigpt.checkpoint import load_model, read_tensors, write_tensors
    from minigpt.cli import main

    tensors = read_tensors(run / "model.safetensors")
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    for bad in (math.nan, math.inf):
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = bad
        write_tensors(run / "model.safetensors", tensors)  # a valid checksum: only the values are bad
        refused(lambda: load_model(run), str(run / "model.safetensors"), name, "NaN or infinite")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = digest(run)
    assert main(["generate", "--checkpoint", str(run), "Once"]) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and len(err.strip().splitlines()) == 1
    assert digest(run) == before


def test_resume_skips_a_checkpoint_with_nan_weights(tmp_path, story_file):
    from minigpt import ModelConfig, TrainConfig, train
    from minigpt.checkpoint import checkpoint_dirs, read_tensors, write_tensors

    def cfg(max_steps):
        return TrainConfig(data=[story_file], batch_size=4, max_steps=max_steps, eval_interval=10,
                           eval_batches=1, sample_chars=0, threads=1, warmup_steps=2)

    out = tmp_path / "r"
    train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1), cfg(20), out,
          log=lambda *a: None)
    newest = checkpoint_dirs(out)[0] / "model.safetensors"
    tensors = {k: v.clone() for k, v in read_tensors(newest).items()}
    next(v for v in tensors.values() if v.is_floating_point()).fill_(math.nan)
    write_tensors(newest, tensors)
    lines = []
    train(None, cfg(30), out, resume=True, log=lines.append)
    assert any("skipping damaged checkpoint step-00000020" in str(line) and "NaN" in str(line)
               for line in lines), lines
    assert any("resuming at step 10" in str(line) for line in lines), lines


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_truncated_bin_is_refused_on_resume_and_report(run, capsys, monkeypatch, split):
    from minigpt.cli import main

    path = run / "data" / f"{split}.bin"
    path.write_bytes(path.read_bytes()[:-7])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = digest(run)
    for args in (["train", "--resume", str(run)], ["report", "--checkpoint", str(run), "--stories", "1"]):
        assert main(args) == 2, capsys.readouterr().err
        err = capsys.readouterr().err
        assert str(path) in err and "meta.json recorded" in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert digest(run) == before


def test_prepared_data_checks(run):
    from minigpt.data import load_splits
    from minigpt.tokenizer import WordTokenizer, load_tokenizer

    data, tokenizer = run / "data", load_tokenizer(run / "tokenizer.json")
    train = (data / "train.bin").read_bytes()
    (data / "train.bin").write_bytes(train[:-1] + bytes([250]))  # an id past the vocabulary
    refused(lambda: load_splits(data, tokenizer), "train.bin holds id 250", "outside")
    (data / "train.bin").write_bytes(train)
    meta = json.loads((data / "meta.json").read_text())
    for value in ("many", -1, True):
        (data / "meta.json").write_text(json.dumps(dict(meta, val_tokens=value)))
        refused(lambda: load_splits(data, tokenizer), "meta.json: val_tokens must be a count")
    (data / "meta.json").write_text(json.dumps(dict(meta, tokenizer="bpe")))
    refused(lambda: load_splits(data, tokenizer), "written by a 'bpe' tokenizer", "'char'")
    (data / "meta.json").write_text("{oops")
    refused(lambda: load_splits(data, tokenizer), "meta.json is not valid JSON")
    (data / "meta.json").unlink()  # runs from before meta.json: no counts to compare
    # uint16 ids: an odd number of bytes is a torn id
    words = WordTokenizer([" ", "\n"] + [f"w{i}" for i in range(300)])
    (data / "train.bin").write_bytes(b"\x00\x00\x02")
    refused(lambda: load_splits(data, words), "not a whole number of 2-byte ids")
    (data / "train.bin").write_bytes(b"")
    refused(lambda: load_splits(data, words), "missing or empty")


# ---------------------------------------------------------------- torn metrics: export and serve


def test_export_and_serve_summaries_survive_a_torn_last_line(run, tmp_path):
    from minigpt.checkpoint import load_model
    from minigpt.pretrained import export, run_summary
    from minigpt.serve import _facts

    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 130, "train_nats": 1.')  # the torn record of a kill
    summary = run_summary(run)
    assert summary["step"] == 120 and summary["held_out_bits_per_char"] > 0
    model, _, config = load_model(run)
    assert _facts(run, model, config)["step"] == 120
    out = export(run, tmp_path / "exported")
    assert json.loads((out / "config.json").read_text())["summary"] == summary
    # a record that lacks a field (edited by hand) is passed over for the one before it
    with open(run / "metrics.jsonl", "a") as f:
        f.write('\n{"step": 140}\n')
    assert run_summary(run) == summary
    assert torch.isfinite(next(iter(model.state_dict().values()))).all()


# ---------------------------------------------------------------- fuzzed run files

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


def _good_tokenizers() -> dict:
    from conftest import make_stories
    from minigpt.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer

    stories = make_stories(30)
    return {"char": CharTokenizer.from_text("".join(stories)).to_dict(),
            "word": WordTokenizer.train(stories, 40).to_dict(),
            "bpe": BPETokenizer.train(stories, 280).to_dict()}


GOOD_TOKENIZERS = _good_tokenizers()


@FUZZ
@given(kind=st.sampled_from(sorted(GOOD_TOKENIZERS)), key=st.sampled_from(
    ["kind", "eos_id", "unk_id", "chars", "words", "huggingface", "extra"]), value=JSON_VALUES)
def test_any_edit_of_a_tokenizer_json_loads_or_is_a_user_error(kind, key, value):
    from minigpt import UserError
    from minigpt.tokenizer import tokenizer_from_dict

    data = json.loads(json.dumps(GOOD_TOKENIZERS[kind]))
    data[key] = value
    try:
        tokenizer = tokenizer_from_dict(data, "tokenizer.json")
    except UserError as exc:
        assert str(exc).startswith("tokenizer.json") and "\n" not in str(exc)
        return
    text = "Once upon a time"
    if not tokenizer.unknown(text):
        ids = tokenizer.encode(text)
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
        tokenizer.decode(ids)


@FUZZ
@given(key=st.sampled_from(["vocab_size", "block_size", "n_embd", "num_heads", "n_layers",
                            "ff_hidden_mult", "dropout", "attn_dropout", "attention", "bias", "extra"]),
       value=JSON_VALUES)
def test_any_edit_of_config_json_model_is_checked_or_a_user_error(key, value):
    from minigpt import ModelConfig, UserError
    from minigpt.runfiles import saved_model_config

    values = dict(ModelConfig(vocab_size=40, n_embd=16, num_heads=2, n_layers=1).__dict__, **{key: value})
    try:
        config = saved_model_config(Path("config.json"), values)
    except UserError as exc:
        assert "config.json" in str(exc) and "\n" not in str(exc)
        return
    config.validate()
    assert config.vocab_size >= 1
