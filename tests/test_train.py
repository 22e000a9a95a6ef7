"""Training, checkpoints, resume and evaluation."""

import json
import math

import pytest
import torch

from minigpt import ModelConfig, TrainConfig, UserError, load, train
from minigpt.checkpoint import latest_state, read_tensors
from minigpt.config import parse_duration
from minigpt.optim import learning_rate
from minigpt.train import DEFAULT_STEPS, Budget

QUIET = dict(log=lambda *a: None)


def small(block=32):
    return ModelConfig(block_size=block, n_embd=32, num_heads=2, n_layers=2, dropout=0.1)


def cfg(data, **kw):
    base = dict(data=[data], batch_size=8, eval_interval=10, eval_batches=2, sample_chars=10,
                threads=1, warmup_steps=5)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_held_out_loss_and_writes_the_run(tiny_run):
    lines = [json.loads(l) for l in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [60, 120]
    assert lines[-1]["val_nats"] < lines[0]["val_nats"] < math.log(40)
    assert lines[-1]["val_bpc"] == pytest.approx(lines[-1]["val_nats"] / math.log(2))
    for name in ("config.json", "model.safetensors", "tokenizer.json", "samples.txt",
                 "data/train.bin", "data/val.bin", "checkpoints/best/model.safetensors",
                 "checkpoints/step-00000060/train_state.safetensors",
                 "checkpoints/step-00000120/state.json"):
        assert (tiny_run / name).exists(), name
    assert not list(tiny_run.glob("*.tmp")) and not list(tiny_run.glob(".*.tmp"))
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["model"]["vocab_size"] > 10 and config["torch_version"] == torch.__version__


def test_checkpoint_round_trip_gives_identical_logits(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    again, _, _ = load(tiny_run, device="cpu")
    ids = torch.tensor([tok.encode("Once upon a time")])
    assert torch.equal(model(ids)[0], again(ids)[0])
    from safetensors.torch import load_file
    saved = load_file(str(tiny_run / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_equals_uninterrupted_training(tmp_path, story_file, optimizer):
    run_cfg = cfg(story_file, max_steps=30, optimizer=optimizer)
    straight = train(small(), run_cfg, tmp_path / "straight", **QUIET)
    halves = train(small(), cfg(story_file, max_steps=30, optimizer=optimizer), tmp_path / "halves",
                   interrupt_at_step=15, **QUIET)
    assert latest_state(halves)["step"] == 15
    train(None, cfg(story_file, max_steps=30, optimizer=optimizer), halves, resume=True, **QUIET)
    a, _, _ = load(straight, "cpu")
    b, _, _ = load(halves, "cpu")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert latest_state(halves)["step"] == 30


def test_runs_from_before_the_optimizer_option_resume_with_adamw(tmp_path, story_file):
    run = train(small(), cfg(story_file, max_steps=20, optimizer="adamw"), tmp_path / "old",
                interrupt_at_step=10, **QUIET)
    config = json.loads((run / "config.json").read_text())
    del config["train"]["optimizer"], config["train"]["muon_momentum"]  # as older runs wrote it
    (run / "config.json").write_text(json.dumps(config))
    train(None, cfg(story_file, max_steps=20), run, resume=True, **QUIET)  # AdamW state loads
    assert latest_state(run)["step"] == 20
    # It went on with AdamW: no Muon momentum in the optimizer state it saved at step 20.
    state = read_tensors(run / "checkpoints/step-00000020/train_state.safetensors")
    assert "optimizer.0.exp_avg" in state and not any(k.endswith(".momentum") for k in state)


def test_same_seed_same_run_different_seed_different_run(tmp_path, story_file):
    runs = [train(small(), cfg(story_file, max_steps=5, seed=s), tmp_path / f"r{i}", **QUIET)
            for i, s in enumerate([1, 1, 2])]
    w = [load(r, "cpu")[0].head.weight for r in runs]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_existing_run_is_never_overwritten(tiny_run, story_file):
    before = (tiny_run / "model.safetensors").read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        train(small(), cfg(story_file, max_steps=2), tiny_run, **QUIET)
    assert (tiny_run / "model.safetensors").read_bytes() == before


def test_data_shorter_than_block_size(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("A tiny story.\n<|endoftext|>\nAnother one.\n")
    with pytest.raises(UserError, match="fewer than block_size"):
        train(small(block=64), cfg(str(path), max_steps=2), tmp_path / "r", **QUIET)


def test_diverging_loss_stops_with_a_clear_error(tmp_path, story_file):
    with pytest.raises(UserError, match="diverged"):
        train(small(), cfg(story_file, max_steps=50, learning_rate=10.0, warmup_steps=0,
                           grad_clip=0.0), tmp_path / "r", **QUIET)


def test_budget_epochs_steps_and_time():
    base = TrainConfig(batch_size=10, max_steps=None)
    assert Budget(base, 10_000, 10).max_steps == DEFAULT_STEPS  # nothing asked
    assert Budget(TrainConfig(batch_size=10, epochs=1), 10_000, 10).max_steps == 100
    assert Budget(TrainConfig(batch_size=10, epochs=2.5), 10_000, 10).max_steps == 250
    assert Budget(TrainConfig(batch_size=10, epochs=2, max_steps=30), 10_000, 10).max_steps == 30
    timed = Budget(TrainConfig(max_time="2m"), 10_000, 10)
    assert timed.max_steps is None and timed.done(10**6, 119) is False and timed.done(1, 120)
    assert parse_duration("1.5h") == 5400 and parse_duration("90") == 90
    with pytest.raises(UserError, match="duration"):
        parse_duration("ten minutes")


def test_learning_rate_warms_up_then_decays():
    c = TrainConfig(learning_rate=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(c, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(c, 9, 0.1) == pytest.approx(1.0)
    assert learning_rate(c, 50, 0.5) == pytest.approx(0.55)
    assert learning_rate(c, 100, 1.0) == pytest.approx(0.1)
