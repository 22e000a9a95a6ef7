"""torchrun + DDP on CPU: 2 processes x 1 thread with gloo on loopback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigpt import ModelConfig, TrainConfig, load, train
from minigpt.checkpoint import checkpoint_dirs, latest_state

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real torchrun process groups
MODEL = ["--block-size", "32", "--n-embd", "32", "--num-heads", "2", "--n-layers", "1"]
COMMON = ["--batch-size", "8", "--eval-interval", "10", "--eval-batches", "2", "--sample-chars", "0",
          "--threads", "1", "--warmup-steps", "2", "--seed", "5"]


def torchrun(*args, nproc=2):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--standalone", "-m", "minigpt", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, story_file):
    out = tmp_path_factory.mktemp("ddp") / "run"
    result = torchrun("--data", story_file, "--out", str(out), "--max-steps", "20", *MODEL, *COMMON)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_ranks_agree_and_only_rank_0_writes(two_process_run):
    out, result = two_process_run
    assert "distributed: 2 processes, global batch 8 = 2 x 1 micro-batches of 4" in result.stdout
    assert result.stdout.count("step 20: all 2 ranks hold identical weights") == 1
    assert result.stdout.count("saved run:") == 1 and result.stdout.count("model:") == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # steps 10 and 20, once
    assert [d.name for d in checkpoint_dirs(out)] == ["step-00000020", "step-00000010"]


def test_matches_a_single_process_with_the_same_global_batch(two_process_run, story_file, tmp_path):
    out, _ = two_process_run
    cfg = TrainConfig(data=[story_file], batch_size=8, eval_interval=10, eval_batches=2,
                      sample_chars=0, threads=1, warmup_steps=2, seed=5, max_steps=20, plot_loss=False)
    model_cfg = ModelConfig(block_size=32, n_embd=32, num_heads=2, n_layers=1)
    single = train(model_cfg, cfg, tmp_path / "single", log=lambda *a: None)
    accum = train(ModelConfig(block_size=32, n_embd=32, num_heads=2, n_layers=1),
                  TrainConfig(**{**cfg.__dict__, "grad_accum": 4}), tmp_path / "accum", log=lambda *a: None)
    a, _, _ = load(out, "cpu")
    for other in (single, accum):
        b, _, _ = load(other, "cpu")
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(pa, pb, atol=2e-5), (other.name, name, (pa - pb).abs().max())


def test_resume_under_torchrun_continues_the_step_count(two_process_run, story_file):
    out, _ = two_process_run
    result = torchrun("--resume", str(out), "--max-steps", "30")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming at step 20" in result.stdout
    assert latest_state(out)["step"] == 30 and latest_state(out)["world_size"] == 2
    steps = [int(l.split('"step": ')[1].split(",")[0]) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30]


def test_batch_must_divide_among_processes(story_file, tmp_path):
    result = torchrun("--data", story_file, "--out", str(tmp_path / "r"), "--max-steps", "2",
                      *MODEL, *COMMON, "--grad-accum", "3")
    assert result.returncode != 0
    assert "batch_size 8 must be divisible by processes (2) x grad_accum (3)" in result.stderr
    assert not (tmp_path / "r").exists()
