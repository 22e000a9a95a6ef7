"""A run directory is owned (issue #19): one training run writes it at a time, a failed start
removes only what it created, and export never writes into a run or over what it did not write."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import make_stories, write_txt
from filelock import FileLock, Timeout

from minigpt import ModelConfig, TrainConfig, UserError, load, train
from minigpt.checkpoint import atomic_write, checkpoint_dirs
from minigpt.cli import main
from minigpt.rundir import LOCK

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(log=lambda *a: None)
TINY = ["--block-size", "16", "--n-embd", "16", "--num-heads", "2", "--n-layers", "1",
        "--batch-size", "4", "--eval-batches", "1", "--sample-chars", "0", "--threads", "1",
        "--warmup-steps", "1"]


def tiny_model():
    return ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1)


def tiny_cfg(data, **kw):
    return TrainConfig(**{**dict(data=[str(data)], batch_size=4, max_steps=4, eval_interval=2,
                                 eval_batches=1, sample_chars=0, threads=1, warmup_steps=1,
                                 plot_loss=False), **kw})


def snapshot(path: Path) -> dict:
    """Every file and directory under `path`: its bytes' digest (files) and its mode."""
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
                                       else "dir", stat.S_IMODE(p.lstat().st_mode))
            for p in sorted(path.rglob("*"))}


def minigpt(*args, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "minigpt", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the first run ended (code {proc.returncode}) before {what}: "
                        f"{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> str:
    return write_txt(tmp_path_factory.mktemp("data") / "stories.txt", make_stories(60))


# A start that fails after preparing the data and writing the tokenizer: a window longer than the
# few hundred characters of the text (small enough that any memory check lets it through).
LONG_WINDOW = ModelConfig(block_size=1024, n_embd=16, num_heads=2, n_layers=1)


# --- one writer at a time -------------------------------------------------------------------


@pytest.mark.slow
def test_two_trainings_started_together_into_one_directory_one_trains_one_is_refused(tmp_path, story):
    out = tmp_path / "same"
    args = ["train", "--data", story, "--out", str(out), "--max-steps", "6", "--eval-interval", "3",
            *TINY]
    procs = [minigpt(*args), minigpt(*args)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    _, _, err = next(r for r in results if r[0] == 2)
    # which message depends on how far the winner got: still starting (locked) or already a run
    assert ("is in use by another training run (pid " in err or "already holds a run" in err), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert [d.name for d in checkpoint_dirs(out)] == ["step-00000006", "step-00000003"]
    load(out, "cpu")  # the winner's run is whole


@pytest.mark.slow
def test_a_run_still_starting_holds_its_directory_against_a_second_start(tmp_path, story):
    """The first run is a real training run paused inside its data preparation (it holds the
    lock, has no config.json yet): a second `minigpt train --out` there is refused, changes
    nothing, and the first run then finishes normally."""
    out, go = tmp_path / "run", tmp_path / "go"
    holder = textwrap.dedent(f"""
        import pathlib, time
        import minigpt.rundir as rundir
        from minigpt import ModelConfig, TrainConfig, train
        real = rundir.prepare_data
        def paused(cfg, data_dir, log):
            print("locked", flush=True)
            while not pathlib.Path({str(go)!r}).exists():
                time.sleep(0.05)
            return real(cfg, data_dir, log)
        rundir.prepare_data = paused
        train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1),
              TrainConfig(data=[{story!r}], batch_size=4, max_steps=2, eval_interval=2,
                          eval_batches=1, sample_chars=0, threads=1, warmup_steps=1,
                          plot_loss=False), {str(out)!r}, log=lambda *a: None)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-c", holder], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert first.stdout.readline().strip() == "locked", first.stderr.read()
        before = snapshot(out)
        assert LOCK in before and "config.json" not in before
        second = minigpt("train", "--data", story, "--out", str(out), "--max-steps", "2", *TINY)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert f"{out} is in use by another training run (pid {first.pid})" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert snapshot(out) == before
        go.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
    load(out, "cpu")


@pytest.mark.slow
def test_resume_while_another_run_trains_there_is_refused_and_changes_nothing(tmp_path, story):
    out = tmp_path / "run"
    first = minigpt("train", "--data", story, "--out", str(out), "--max-steps", "100000",
                    "--eval-interval", "5", *TINY)
    try:
        wait_for(lambda: checkpoint_dirs(out), "its first checkpoint", first)
        first.send_signal(signal.SIGSTOP)  # frozen, so the directory holds still while we look
        try:
            before = snapshot(out)
            second = minigpt("train", "--resume", str(out))
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            assert f"is in use by another training run (pid {first.pid})" in err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
            assert snapshot(out) == before
        finally:
            first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGTERM)  # stops cleanly with a checkpoint
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
    # the lock went with the process: the run can be resumed now
    step = int(checkpoint_dirs(out)[0].name.removeprefix("step-"))
    train(None, TrainConfig(max_steps=step + 2, threads=1), out, resume=True, **QUIET)
    assert checkpoint_dirs(out)[0].name == f"step-{step + 2:08d}"


def test_the_lock_is_held_while_training_and_released_after(tmp_path, story):
    held = []

    def log(line):  # called during training: try to take the lock from outside
        if not held:
            try:
                FileLock(tmp_path / "run" / LOCK, timeout=0).acquire()
                held.append(False)
            except Timeout:
                held.append(True)
    run = train(tiny_model(), tiny_cfg(story), tmp_path / "run", log=log)
    assert held == [True]
    assert (run / LOCK).read_text().strip() == str(os.getpid())  # the holder, for the message
    lock = FileLock(run / LOCK, timeout=0)
    lock.acquire()  # free again once train() returned
    with pytest.raises(UserError, match=r"is in use by another training run \(pid \d+\)"):
        train(None, tiny_cfg(story, max_steps=6), run, resume=True, **QUIET)
    lock.release()


def test_the_lock_file_disturbs_nothing_that_reads_a_run(tmp_path, story):
    run = train(tiny_model(), tiny_cfg(story), tmp_path / "run", **QUIET)
    assert (run / LOCK).exists()  # filelock leaves it; it marks nothing by its presence
    load(run, "cpu")
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "model")]) == 0
    assert LOCK not in os.listdir(tmp_path / "model")
    train(None, tiny_cfg(story, max_steps=6), run, resume=True, **QUIET)
    assert checkpoint_dirs(run)[0].name == "step-00000006"


# --- a failed start removes only what it created -------------------------------------------


def user_project(root: Path) -> Path:
    """A folder of the user's: the training text, notes, a script, and a name the old write
    probe used to overwrite and delete."""
    root.mkdir()
    write_txt(root / "stories.txt", make_stories(3))
    (root / "notes.md").write_text("my notes\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / ".write-test").write_text("mine too")
    (root / "sub").mkdir()
    (root / "sub" / "keep.txt").write_text("kept")
    return root


def test_a_failed_start_in_a_folder_of_the_users_leaves_it_byte_for_byte(tmp_path, story):
    proj = user_project(tmp_path / "proj")
    before = snapshot(proj)
    with pytest.raises(UserError, match="fewer than block_size"):
        train(LONG_WINDOW, tiny_cfg(proj / "stories.txt"), proj, **QUIET)
    assert snapshot(proj) == before  # no data/, tokenizer.json or .lock left, nothing of theirs gone


def test_a_folder_that_already_has_data_is_refused_before_anything_is_touched(tmp_path, story,
                                                                                capsys):
    proj = user_project(tmp_path / "proj")
    (proj / "data").mkdir()
    (proj / "data" / "stories.txt").write_bytes(Path(story).read_bytes())
    before = snapshot(proj)
    code = main(["train", "--data", str(proj / "data" / "stories.txt"), "--out", str(proj), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "already holds data/, which a new run would write: move it away" in err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(proj) == before


def test_a_failed_start_removes_the_directories_it_made_and_no_others(tmp_path, story):
    (tmp_path / "a").mkdir()
    short = write_txt(tmp_path / "short.txt", make_stories(3))
    with pytest.raises(UserError, match="fewer than block_size"):
        train(LONG_WINDOW, tiny_cfg(short), tmp_path / "a" / "b" / "c", **QUIET)
    assert sorted(os.listdir(tmp_path)) == ["a", "short.txt"] and os.listdir(tmp_path / "a") == []


def test_a_start_refused_for_its_disk_space_leaves_the_users_folder_as_it_was(tmp_path, story,
                                                                                monkeypatch):
    import shutil
    proj = user_project(tmp_path / "proj")
    before = snapshot(proj)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(UserError, match="free on the disk"):
        train(tiny_model(), tiny_cfg(proj / "stories.txt"), proj, **QUIET)
    assert snapshot(proj) == before


# --- export -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory, story) -> Path:
    return train(tiny_model(), tiny_cfg(story), tmp_path_factory.mktemp("runs") / "run", **QUIET)


def export(*args) -> tuple[int, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(["export", *args])
    return code, err.getvalue()


def test_export_refuses_a_directory_holding_other_files(run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    before = snapshot(out)
    code, err = export("--checkpoint", str(run), "--out", str(out))
    assert code == 2 and "already holds files (notes.md)" in err and "--force" in err
    assert snapshot(out) == before


def test_export_force_replaces_only_its_files_and_keeps_every_mode(run, tmp_path):
    out = tmp_path / "out"
    assert export("--checkpoint", str(run), "--out", str(out))[0] == 0
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}  # new: readable by all
    (out / "config.json").chmod(0o600)
    (out / "notes.md").write_text("mine\n")
    (out / "notes.md").chmod(0o640)
    (out / "run.sh").write_text("#!/bin/sh\n")
    (out / "run.sh").chmod(0o755)
    old_weights = (out / "model.safetensors").read_bytes()
    code, err = export("--checkpoint", str(run), "--out", str(out), "--force", "--dtype", "fp16")
    assert code == 0, err
    assert (out / "model.safetensors").read_bytes() != old_weights  # replaced: now fp16
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"config.json": 0o600, "model.safetensors": 0o644, "tokenizer.json": 0o644,
                     "words.txt": 0o644, "metrics.jsonl": 0o644, "notes.md": 0o640, "run.sh": 0o755}
    assert (out / "notes.md").read_text() == "mine\n" and (out / "run.sh").read_text() == "#!/bin/sh\n"
    assert load(out, "cpu")[2]["weights_dtype"] == "float16"


@pytest.mark.parametrize("where", ["run", "run/checkpoints", "run/checkpoints/new/model",
                                   "run/data"])
def test_export_refuses_any_path_inside_a_run(run, tmp_path, where):
    out = run.parent / where
    before = snapshot(run)
    for force in ([], ["--force"]):
        code, err = export("--checkpoint", str(run), "--out", str(out), *force)
        assert code == 2 and ("inside the training run" in err or "already holds" in err), err
        assert len(err.strip().splitlines()) == 1
    assert snapshot(run) == before
    assert not (run / "checkpoints" / "new").exists()


def test_export_of_another_run_into_a_run_is_refused_too(run, tmp_path, story):
    other = train(tiny_model(), tiny_cfg(story, max_steps=2), tmp_path / "other", **QUIET)
    code, err = export("--checkpoint", str(run), "--out", str(other / "checkpoints"))
    assert code == 2 and f"inside the training run {other.resolve()}" in err


def test_a_failed_export_leaves_no_directory_behind(run, tmp_path):
    code, err = export("--checkpoint", str(run), "--out", str(tmp_path / "new" / "model"),
                       "--card", str(tmp_path / "missing.md"))
    assert code == 2 and "is not a file" in err
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text("old")
    secret.chmod(0o600)
    atomic_write(secret, lambda tmp: tmp.write_text("new"))
    assert secret.read_text() == "new" and stat.S_IMODE(secret.stat().st_mode) == 0o600
