"""The learning-rate schedules (optim.learning_rate): today's cosine, unchanged, and issue 20's
warmup-stable-decay, keyed to whichever budget applies (steps, epochs or --max-time)."""

import math
from itertools import pairwise

import pytest

from minigpt import TrainConfig
from minigpt.config import RESUMABLE, ModelConfig, resolve
from minigpt.errors import UserError
from minigpt.optim import learning_rate
from minigpt.train import Budget


def wsd(**kw) -> TrainConfig:
    kw = {"learning_rate": 1.0, "warmup_steps": 10, "min_lr_ratio": 0.1, "schedule": "wsd", **kw}
    return TrainConfig(**kw)


def test_the_default_is_still_the_cosine():
    cfg = TrainConfig()
    assert cfg.schedule == "cosine" and cfg.decay_fraction == 0.2


def test_cosine_gives_todays_exact_values():
    """The formula before issue 20, written out: warmup, then a cosine over the whole progress."""
    c = TrainConfig(learning_rate=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(c, 0, 0.0) == 0.1
    assert learning_rate(c, 9, 0.1) == 1.0
    for progress in (0.1, 0.25, 0.5, 0.8, 0.95, 1.0, 1.7):
        old = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        assert learning_rate(c, 50, progress) == old
    assert learning_rate(c, 50, 0.5) == pytest.approx(0.55)
    # decay_fraction belongs to wsd only: the cosine ignores it
    assert learning_rate(TrainConfig(decay_fraction=0.5), 500, 0.3) == \
        learning_rate(TrainConfig(), 500, 0.3)


def test_wsd_warms_up_holds_the_peak_then_falls_in_a_straight_line():
    c = wsd()
    # warmup: the same linear ramp as the cosine's
    assert [learning_rate(c, s, s / 1000) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    # stable: exactly the peak from the end of warmup until 80% of the budget
    assert all(learning_rate(c, 10 + s, p) == 1.0 for s, p in enumerate((0.01, 0.3, 0.5, 0.79)))
    assert learning_rate(c, 800, 0.8) == pytest.approx(1.0)  # (1 - 0.8) / 0.2, in floats
    # decay: a straight line from the peak at 80% to min_lr_ratio * peak at 100%
    points = [0.8, 0.85, 0.9, 0.95, 1.0]
    rates = [learning_rate(c, 900, p) for p in points]
    assert rates == pytest.approx([1.0, 0.775, 0.55, 0.325, 0.1])
    steps = [b - a for a, b in pairwise(rates)]
    assert steps == pytest.approx([steps[0]] * 4)  # constant slope
    assert learning_rate(c, 1200, 1.3) == pytest.approx(0.1)  # past the budget: the floor


@pytest.mark.parametrize("fraction", [0.05, 0.5, 1.0])
def test_wsd_decays_over_the_last_decay_fraction(fraction):
    c = wsd(warmup_steps=0, min_lr_ratio=0.0, decay_fraction=fraction)
    start = 1 - fraction
    if start > 0:
        assert learning_rate(c, 1, start - 1e-9) == 1.0
    assert learning_rate(c, 1, start + fraction / 2) == pytest.approx(0.5)
    assert learning_rate(c, 1, 1.0) == 0.0


def test_wsd_follows_steps_or_epochs_whichever_is_the_budget():
    c = wsd(warmup_steps=0, max_steps=1000)
    budget = Budget(c, train_tokens=10**6, block_size=16)
    assert learning_rate(c, 799, budget.progress(799, elapsed=0.0)) == 1.0
    assert learning_rate(c, 900, budget.progress(900, elapsed=0.0)) == pytest.approx(0.55)
    # epochs: 10**5 tokens / (16 windows x 10 chars) = 625 steps per epoch; 2 epochs = 1250 steps
    c = wsd(warmup_steps=0, batch_size=16, epochs=2)
    budget = Budget(c, train_tokens=10**5, block_size=10)
    assert budget.max_steps == 1250
    assert learning_rate(c, 999, budget.progress(999, 0.0)) == 1.0  # 999 / 1250 < 0.8
    assert learning_rate(c, 1125, budget.progress(1125, 0.0)) == pytest.approx(0.55)


def test_wsd_under_max_time_decays_in_the_last_fifth_of_the_wall_time():
    """--max-time 10m: the rate follows the training clock, not the step count; no sleeping, the
    elapsed seconds are handed to the Budget as the loop does (train._loop)."""
    c = wsd(warmup_steps=0, max_time="10m")
    budget = Budget(c, train_tokens=10**6, block_size=16)
    assert budget.max_steps is None
    # however many steps were taken, the peak holds for 8 minutes ...
    for step in (5, 5_000, 10**6):
        assert learning_rate(c, step, budget.progress(step, elapsed=479.0)) == 1.0
    # ... then falls in a straight line to the floor at 10 minutes
    at = {s: learning_rate(c, 5_000, budget.progress(5_000, elapsed=s)) for s in (480, 540, 570, 600)}
    assert at == pytest.approx({480: 1.0, 540: 0.55, 570: 0.325, 600: 0.1})
    # with steps and time both given, whichever budget is closer to running out sets the pace
    both = wsd(warmup_steps=0, max_time="10m", max_steps=1000)
    budget = Budget(both, train_tokens=10**6, block_size=16)
    assert learning_rate(both, 900, budget.progress(900, elapsed=60.0)) == pytest.approx(0.55)
    assert learning_rate(both, 10, budget.progress(10, elapsed=540.0)) == pytest.approx(0.55)


@pytest.mark.parametrize("bad, message", [
    ({"schedule": "linear"}, "schedule must be cosine or wsd, got 'linear'"),
    ({"schedule": ""}, "schedule must be cosine or wsd"),
    ({"decay_fraction": 0}, "decay_fraction must be in (0, 1], got 0"),
    ({"decay_fraction": 1.5}, "decay_fraction must be in (0, 1]"),
    ({"decay_fraction": -0.2}, "decay_fraction must be in (0, 1]"),
    ({"decay_fraction": float("nan")}, "decay_fraction must be in (0, 1]"),
    ({"decay_fraction": float("inf")}, "decay_fraction must be in (0, 1]"),
    ({"decay_fraction": "0.2"}, "decay_fraction must be a number"),
])
def test_bad_schedule_values_are_refused_in_one_line(bad, message):
    with pytest.raises(UserError) as info:
        TrainConfig(**bad).validate()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_toml_file_and_the_options_set_the_schedule(tmp_path):
    toml = tmp_path / "wsd.toml"
    toml.write_text('[train]\nschedule = "wsd"\ndecay_fraction = 0.3\n')
    _, cfg = resolve(toml=toml)
    assert (cfg.schedule, cfg.decay_fraction) == ("wsd", 0.3)
    _, cfg = resolve(toml=toml, overrides={"decay_fraction": 0.1})
    assert cfg.decay_fraction == 0.1


def test_the_schedule_is_part_of_the_run_like_the_learning_rate():
    """Not RESUMABLE: a resumed run keeps the schedule it was trained with, as it keeps its
    learning rate; a new budget stretches the same curve over the new length."""
    assert "schedule" not in RESUMABLE and "decay_fraction" not in RESUMABLE
    saved = (ModelConfig(), TrainConfig(schedule="wsd", max_steps=100))
    for change in ({"schedule": "cosine"}, {"decay_fraction": 0.5}):
        with pytest.raises(UserError, match=f"{next(iter(change))} cannot change"):
            resolve(overrides=change, resumed=saved)
    _, cfg = resolve(overrides={"schedule": "wsd", "max_steps": 500}, resumed=saved)
    assert (cfg.schedule, cfg.max_steps) == ("wsd", 500)
