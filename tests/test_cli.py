"""The command line end to end, the seed's entry points, and bad input answered in one line."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt.checkpoint import latest_state

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--block-size", "32", "--n-embd", "32", "--num-heads", "2", "--n-layers", "1",
        "--batch-size", "8", "--eval-interval", "20", "--eval-batches", "2", "--sample-chars", "20",
        "--threads", "1"]


def run(*args, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "minigpt", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_train_generate_eval_end_to_end(tmp_path, story_file):
    out = tmp_path / "run"
    result = run("train", "--data", story_file, "--out", str(out), "--max-steps", "40", *TINY)
    assert result.returncode == 0, result.stderr
    assert "held-out" in result.stdout and "saved run" in result.stdout
    assert "step 40/40" in result.stderr  # the progress line
    gen = run("generate", "--checkpoint", str(out), "Once upon", "--max-new-tokens", "30", "--seed", "1",
              "--num-samples", "2")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.count("Once upon") == 2
    ev = run("eval", "--checkpoint", str(out), "--data", story_file, "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert 0 < result["bits_per_char"] < 6 and result["chars"] > 1000
    more = run("train", "--resume", str(out), "--max-steps", "60")
    assert more.returncode == 0, more.stderr
    assert "resuming at step 40" in more.stdout
    assert latest_state(out)["step"] == 60


def test_toml_config_with_command_line_override(tmp_path, story_file):
    config = tmp_path / "c.toml"
    config.write_text("[model]\nn_layers = 2\nn_embd = 48\n[train]\nmax_steps = 3\nbatch_size = 4\n")
    out = tmp_path / "run"
    result = run("train", "--config", str(config), "--data", story_file, "--out", str(out),
                 "--n_embd", "32", "--num_heads", "4", "--block_size", "16", "--threads", "1")
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["n_layers"] == 2 and saved["model"]["n_embd"] == 32  # CLI wins over TOML
    assert saved["train"]["max_steps"] == 3 and saved["train"]["batch_size"] == 4


def test_seed_entry_points(tmp_path, story_file):
    env_path = f"{ROOT}"
    missing = subprocess.run([sys.executable, "-c", "import generate"], capture_output=True, text=True,
                             cwd=tmp_path, env=dict(os.environ, PYTHONPATH=env_path))
    assert missing.returncode != 0 and "no trained checkpoint" in missing.stderr
    trained = subprocess.run([sys.executable, str(ROOT / "train.py"), "--data", story_file,
                              "--max-steps", "5", *TINY], capture_output=True, text=True, cwd=tmp_path,
                             env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert trained.returncode == 0, trained.stderr
    assert len(list((tmp_path / "runs").glob("*/model.safetensors"))) == 1
    code = ("from generate import generate, model, encoder, decoder\n"
            "story = generate(model, 'Once upon a time', max_new_tokens=200)\n"
            "assert isinstance(story, str) and story.startswith('Once upon a time'), story\n"
            "assert generate(model, 'Once', max_new_tokens=20, stop_at_eos=False) != 'Once'\n"
            "assert decoder(encoder('Once')) == 'Once'\n"
            "print('ok')")
    used = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=env_path))
    assert used.returncode == 0 and used.stdout.strip() == "ok", used.stderr


def _digest(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture()
def bad_inputs(tmp_path, tiny_run):
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run, run_copy)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("Hi.")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02\xff")
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    (tmp_path / "bad.toml").write_text("n_layers = \n")
    (tmp_path / "types.toml").write_text("[train]\nlearning_rate = \"high\"\n")
    (tmp_path / "model.pt").write_bytes(b"\x80\x04pickle")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    mismatch = tmp_path / "mismatch"
    shutil.copytree(tiny_run, mismatch)
    config = json.loads((mismatch / "config.json").read_text())
    config["model"]["n_embd"] = 64
    (mismatch / "config.json").write_text(json.dumps(config))
    return tmp_path


BAD = [
    (["train", "--data", "{d}/nope.txt", "--out", "{d}/new"], "not found"),
    (["train", "--data", "{d}/empty.txt", "--out", "{d}/new"], "no text found"),
    (["train", "--data", "{d}/short.txt", "--out", "{d}/new"], "fewer than block_size"),
    (["train", "--data", "{d}/bin.txt", "--out", "{d}/new"], "binary"),
    (["train", "--data", "{d}/bad.jsonl", "--out", "{d}/new"], "not valid JSON"),
    (["train", "--config", "{d}/bad.toml", "--out", "{d}/new"], "not valid TOML"),
    (["train", "--data", "{story}", "--out", "{d}/run"], "already holds a run"),
    (["train", "--num-heads", "3", "--out", "{d}/new"], "must divide n_embd"),
    (["train", "--block-size", "0", "--out", "{d}/new"], "block_size must be a positive integer"),
    (["train", "--batch-size", "-4", "--out", "{d}/new"], "batch_size must be a positive integer"),
    (["train", "--max-time", "soon", "--out", "{d}/new"], "cannot read duration"),
    (["train", "--device", "tpu", "--out", "{d}/new"], "device must be"),
    (["train", "--resume", "{d}/nope"], "does not exist"),
    (["train", "--resume", "{d}/run", "--n-layers", "8"], "n_layers cannot change"),
    (["train", "--config", "{d}/types.toml", "--out", "{d}/new"], "must be of type float"),
    (["train", "--n-layers", "two"], "invalid int value"),
    (["generate", "--checkpoint", "{d}/run", "--top-p", "0"], "top_p must be in"),
    (["generate", "--checkpoint", "{d}/run", "--top-p", "1.2"], "top_p must be in"),
    (["generate", "--checkpoint", "{d}/run", "--temperature", "-1"], "temperature must be >= 0"),
    (["generate", "--checkpoint", "{d}/run", "Hello #"], "'#'"),
    (["generate", "--checkpoint", "{d}/model.pt"], "pickle checkpoints are never loaded"),
    (["generate", "--checkpoint", "{d}/nope"], "does not exist"),
    (["generate", "--checkpoint", "{d}/empty.txt"], "not a run directory"),
    (["generate", "--checkpoint", "{d}/broken"], "not a readable safetensors"),
    (["generate", "--checkpoint", "{d}/mismatch"], "does not match config.json"),
    (["eval", "--checkpoint", "{d}/run", "--data", "{d}/empty.txt"], "no text to evaluate"),
    (["eval", "--checkpoint", "{d}/run"], "--data"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_changed(bad_inputs, story_file, args, message):
    before = _digest(bad_inputs)
    result = run(*[a.format(d=bad_inputs, story=story_file) for a in args], cwd=bad_inputs)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _digest(bad_inputs) == before


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_saves_a_checkpoint_and_exits_cleanly(tmp_path, story_file, sig):
    import signal
    import time
    out = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "minigpt", "train", "--data", story_file, "--out",
                             str(out), "--max-steps", "100000", *TINY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "model.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for the first checkpoint (step 20): training is under way
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"stopped at step" in stdout and sig in stdout and "Traceback" not in stderr
    step = latest_state(out)["step"]
    assert 20 <= step < 100000
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == step
