"""Data: cleaning, every source format, the story split, memory-mapped ids, offline fallback."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from conftest import make_stories, write_txt
from minigpt import TrainConfig, UserError
from minigpt.data import clean_text, get_batch, hub_reachable, iter_stories, prepare_data
from minigpt.data import sources
from minigpt.tokenizer import EOS_TEXT


def test_clean_maps_punctuation_and_drops_the_rest():
    raw = "  \u201cHi\u201d\u2014she said\u2026 caf\u00e9\t\u00e2\u20ac\u0153ok\u00e2\u20ac\u2122s \U0001F600 \r\n\n\nNext  line  "
    assert clean_text(raw) == '"Hi"-she said... cafe "ok\'s\nNext line'


@given(st.text())
def test_clean_output_is_printable_ascii_without_blank_lines(text):
    out = clean_text(text)
    assert all(c == "\n" or " " <= c <= "~" for c in out)
    assert "\n\n" not in out and out == out.strip()
    assert clean_text(out) == out  # idempotent


def _formats(tmp_path, stories):
    paths = {"txt": write_txt(tmp_path / "a.txt", stories)}
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": s}) for s in stories))
    (tmp_path / "c.json").write_text(json.dumps([{"text": s} for s in stories]))
    (tmp_path / "plain.txt").write_text("\n\n".join(stories))
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"text": stories, "id": list(range(len(stories)))}), tmp_path / "d.parquet")
    paths.update(jsonl=tmp_path / "b.jsonl", json=tmp_path / "c.json", parquet=tmp_path / "d.parquet",
                 plain=tmp_path / "plain.txt")
    return paths


def test_every_format_reads_the_same_stories(tmp_path):
    stories = ["One day, Ann ran.", "Tom said \u201chi\u201d.\nThen he sat.", "The end came."]
    for kind, path in _formats(tmp_path, stories).items():
        got = [clean_text(s) for s in iter_stories(str(path))]
        if kind == "plain":  # blank-line blocks: the two-paragraph story stays whole here
            assert got == [clean_text(s) for s in stories], kind
        else:
            assert got == [clean_text(s) for s in stories], kind


def test_directory_reads_all_files_in_order(tmp_path):
    write_txt(tmp_path / "b.txt", ["second story."])
    sub = tmp_path / "sub"
    sub.mkdir()
    write_txt(sub / "c.txt", ["third story."])
    write_txt(tmp_path / "a.txt", ["first story."])
    (tmp_path / "notes.md").write_text("ignored")
    assert [s.strip() for s in iter_stories(str(tmp_path))] == ["first story.", "second story.", "third story."]


def test_story_ranges_split_a_file_without_overlap(tmp_path):
    path = write_txt(tmp_path / "s.txt", [f"story number {i}." for i in range(20)])
    whole = [s.strip() for s in iter_stories(path)]
    head = [s.strip() for s in iter_stories(path + "@:90%")]
    tail = [s.strip() for s in iter_stories(path + "@90%:")]
    assert head == whole[:18] and tail == whole[18:]
    assert [s.strip() for s in iter_stories(path + "@3:5")] == whole[3:5]
    assert [s.strip() for s in iter_stories(path + "@:100")] == whole
    odd = tmp_path / "a@1:2.txt"  # a real file whose name looks like a range is read whole
    write_txt(odd, ["one.", "two.", "three."])
    assert len(list(iter_stories(str(odd)))) == 3
    with pytest.raises(UserError, match="over 100%"):
        list(iter_stories(path + "@:150%"))
    with pytest.raises(UserError, match="local file"):
        list(iter_stories("tinystories@:10%"))


def test_large_txt_streams_across_chunks(tmp_path):
    stories = make_stories(50)
    write_txt(tmp_path / "s.txt", stories)
    got = list(sources._txt_stories(tmp_path / "s.txt", chunk_chars=150))  # shorter than 2 stories
    assert [s.strip() for s in got] == stories


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"text": "ok"}\n{broken\n', "line 2 is not valid JSON"),
    ("bad.json", "[1, 2", "not valid JSON"),
    ("nofield.jsonl", '{"story": "x"}\n', "\"text\" string field"),
    ("bin.txt", b"\x00\x01\x02abc", "binary"),
    ("latin1.txt", "caf\u00e9".encode("latin-1"), "not UTF-8"),
    ("data.csv", "text\nhello\n", "unsupported file type"),
])
def test_bad_files_give_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError, match=message):
        list(iter_stories(str(path)))


def test_missing_path_is_a_user_error():
    with pytest.raises(UserError, match="not found"):
        list(iter_stories("/no/such/file.txt"))


def test_prepare_splits_whole_stories_and_memmaps(tmp_path):
    stories = [f"Story number {i}." for i in range(40)]
    cfg = TrainConfig(data=[write_txt(tmp_path / "s.txt", stories)], val_fraction=0.1)
    splits = prepare_data(cfg, tmp_path / "data", log=lambda *a: None)
    tok = splits.tokenizer
    assert isinstance(splits.train, np.memmap) and splits.train.dtype == np.uint8
    val_text = tok.decode(splits.val.tolist())
    train_text = tok.decode(splits.train.tolist())
    assert val_text.split(EOS_TEXT)[1:] == [stories[9], stories[19], stories[29], stories[39]]
    assert len(train_text.split(EOS_TEXT)[1:]) == 36 and stories[9] not in train_text
    assert train_text.startswith(EOS_TEXT + stories[0])  # an end-of-story before every story


def test_val_data_and_max_chars(tmp_path):
    train_file = write_txt(tmp_path / "t.txt", ["aaaa bbbb."] * 20)
    val_file = write_txt(tmp_path / "v.txt", ["cccc dddd!"])
    cfg = TrainConfig(data=[train_file], val_data=[val_file], max_chars=35)
    splits = prepare_data(cfg, tmp_path / "data", log=lambda *a: None)
    assert splits.tokenizer.decode(splits.val.tolist()) == EOS_TEXT + "cccc dddd!"
    assert sum(1 for i in splits.train if i != 0) == 35  # characters, end-of-story marks excluded
    assert "!" in splits.tokenizer.stoi  # the vocabulary covers held-out characters too


def test_single_story_falls_back_to_a_character_split(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("just one long line of text " * 20)
    logs = []
    splits = prepare_data(TrainConfig(data=[str(path)]), tmp_path / "data", log=logs.append)
    assert len(splits.val) == pytest.approx(0.1 * (len(splits.train) + len(splits.val)), abs=2)
    assert "held out the last" in logs[0]


def test_empty_data_is_refused(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("  \n\n \U0001F600 \n")
    with pytest.raises(UserError, match="no text found"):
        prepare_data(TrainConfig(data=[str(path)]), tmp_path / "data", log=lambda *a: None)


def test_get_batch_targets_are_inputs_shifted_by_one():
    ids = np.arange(100, dtype=np.uint8)
    x, y = get_batch(ids, 8, 10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 10) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))


def test_offline_falls_back_to_bundled_corpus_quickly(monkeypatch):
    import time
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "HUB_HOST", "hub.invalid")  # never resolves, like this machine
    logs = []
    start = time.monotonic()
    first = next(iter_stories("tinystories", log=logs.append))
    assert time.monotonic() - start < 5
    assert "offline" in logs[0] and "bundled" in logs[0]
    assert first.strip() == next(iter_stories("bundled")).strip()


def test_offline_environment_variable_is_honoured(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False


def test_hub_source_streams_rows_and_stops_at_the_default_cap(monkeypatch, tmp_path):
    """With the hub reachable, rows come from datasets.load_dataset(streaming=True); only the first
    1,000,000 characters are read by default (the generator below never ends)."""
    import itertools
    import types
    calls = {}

    def load_dataset(name, split, streaming):
        calls.update(name=name, split=split, streaming=streaming)
        return ({"text": f"Story {i}: a cat sat on a mat. " * 5} for i in itertools.count())

    monkeypatch.setitem(__import__("sys").modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(sources, "hub_reachable", lambda timeout=2.0: True)
    splits = prepare_data(TrainConfig(data=["tinystories"]), tmp_path / "data", log=lambda *a: None)
    assert calls == {"name": "roneneldan/TinyStories", "split": "train", "streaming": True}
    chars = int((np.asarray(splits.train) != 0).sum() + (np.asarray(splits.val) != 0).sum())
    assert chars == 1_000_000
