"""Nothing lost on crash, nothing unsafe loaded: checkpoints under damage, disk trouble, NaN."""

import errno
import pickle

import pytest

from minigpt import ModelConfig, TrainConfig, UserError, load, train
from minigpt import checkpoint as ckpt
from minigpt.checkpoint import checkpoint_dirs, latest_state, read_tensors

QUIET = dict(log=lambda *a: None)


def small():
    return ModelConfig(block_size=32, n_embd=32, num_heads=2, n_layers=1)


def cfg(data, **kw):
    base = dict(data=[data], batch_size=8, eval_interval=10, eval_batches=2, sample_chars=0,
                threads=1, warmup_steps=2, max_steps=30)
    base.update(kw)
    return TrainConfig(**base)


def flip_byte(path, offset_from_end=20):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_keeps_the_last_k_and_the_best(tmp_path, story_file):
    run = train(small(), cfg(story_file, keep_checkpoints=2, max_steps=50), tmp_path / "r", **QUIET)
    assert [d.name for d in checkpoint_dirs(run)] == ["step-00000050", "step-00000040"]
    import json
    vals = [json.loads(l)["val_nats"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    best = json.loads((run / "checkpoints/best/state.json").read_text())
    assert best["val_nats"] == min(vals)
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_corrupted_weights_are_an_error_naming_the_file(tiny_run, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    flip_byte(run / "model.safetensors")
    with pytest.raises(UserError, match=r"model\.safetensors is corrupted"):
        load(run, "cpu")
    (run / "model.safetensors").write_bytes((tiny_run / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(UserError, match=r"model\.safetensors is not a readable safetensors file"):
        load(run, "cpu")


def test_resume_falls_back_to_the_previous_good_checkpoint(tmp_path, story_file):
    run = train(small(), cfg(story_file, max_steps=30), tmp_path / "r", **QUIET)
    flip_byte(run / "checkpoints/step-00000030/train_state.safetensors")
    logs = []
    train(None, cfg(story_file, max_steps=40), run, resume=True, log=logs.append)
    assert any("skipping damaged checkpoint step-00000030" in l for l in logs)
    assert any("resuming at step 20" in l for l in logs)
    assert latest_state(run)["step"] == 40


def test_resume_after_losing_steps_replays_the_logs_without_duplicates(tmp_path, story_file):
    run = train(small(), cfg(story_file, max_steps=30, sample_chars=5), tmp_path / "r", **QUIET)
    import shutil
    shutil.rmtree(run / "checkpoints/step-00000030")  # as if killed before step 30 was saved
    train(None, cfg(story_file, max_steps=30, sample_chars=5), run, resume=True, **QUIET)
    import json
    steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30]
    assert (run / "samples.txt").read_text().count("--- step 30") == 1


def test_a_pickle_is_never_loaded(tmp_path, tiny_run):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # loading this pickle would create `marker`

    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UserError, match="pickle checkpoints are never loaded"):
        load(evil, "cpu")
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load(run, "cpu")
    assert not marker.exists()


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, story_file, monkeypatch):
    run = train(small(), cfg(story_file, max_steps=10), tmp_path / "r", **QUIET)
    before = (run / "model.safetensors").read_bytes()
    real_save = ckpt.save_file

    def full_disk(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(UserError, match="the disk is full; the previous checkpoint is intact"):
        train(None, cfg(story_file, max_steps=20), run, resume=True, **QUIET)
    monkeypatch.setattr(ckpt, "save_file", real_save)
    assert (run / "model.safetensors").read_bytes() == before
    assert [d.name for d in checkpoint_dirs(run)] == ["step-00000010"]
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    read_tensors(run / "checkpoints/step-00000010/train_state.safetensors")  # still verifies


def test_too_little_disk_space_is_refused_before_training(tmp_path, story_file, monkeypatch):
    import shutil
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(UserError, match="free on the disk"):
        train(small(), cfg(story_file), tmp_path / "r", **QUIET)
    assert not (tmp_path / "r").exists()


def test_unwritable_run_directory(tmp_path, story_file):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="cannot write to run directory"):
        train(small(), cfg(story_file), blocker / "run", **QUIET)
    assert blocker.read_text() == "not a directory"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, story_file, monkeypatch):
    run = train(small(), cfg(story_file, max_steps=20), tmp_path / "r", **QUIET)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints/step-00000020").iterdir()}
    from minigpt.model import MiniGPT
    real_forward = MiniGPT.forward
    calls = {"n": 0}

    def poisoned(self, ids, targets=None, past=None):
        logits, loss, present = real_forward(self, ids, targets, past)
        calls["n"] += 1
        if targets is not None and self.training and calls["n"] > 5:
            loss = loss * float("nan")
        return logits, loss, present

    monkeypatch.setattr(MiniGPT, "forward", poisoned)
    with pytest.raises(UserError, match="loss became nan at step 26"):
        train(None, cfg(story_file, max_steps=40), run, resume=True, **QUIET)
    after = {p.name: p.read_bytes() for p in (run / "checkpoints/step-00000020").iterdir()}
    assert after == before and latest_state(run)["step"] == 20
    assert (run / "model.safetensors").read_bytes() == before["model.safetensors"]
