"""Configuration from one source: the layering, the resume rule, the files, the options made from it."""

import json
import re
import shutil
from dataclasses import fields
from pathlib import Path

import pytest

from minigpt import ModelConfig, SampleConfig, TrainConfig, UserError, train
from minigpt.config import (BUDGET, PRESETS, RESUMABLE, check_range, from_dict, given_fields,
                            load_toml, resolve, saved_configs)
from minigpt.options import build_parser

from test_cli import TINY, run

ROOT = Path(__file__).resolve().parents[1]


def saved_run(tmp_path, model=None, **train_values):
    """A directory with only the config.json of a run: enough for the resume rule."""
    run = tmp_path / "run"
    run.mkdir()
    model = model or {"vocab_size": 40, "n_layers": 2}
    train_values = {"data": ["stories.txt"], "max_time": "10m", "eval_interval": 50, **train_values}
    (run / "config.json").write_text(json.dumps({"model": model, "train": train_values}))
    return run


def test_layers_in_order_defaults_preset_file_options(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[model]\nn_layers = 2\nn_embd = 64\n[train]\nlearning_rate = 1e-3\n")
    model, cfg = resolve("seed", toml, {"n_embd": 32, "num_heads": None})
    assert (model.n_layers, model.n_embd, model.num_heads) == (2, 32, 4)  # file, option, default
    assert cfg.learning_rate == 1e-3 and cfg.batch_size == PRESETS["seed"]["train"]["batch_size"]
    assert resolve() == (ModelConfig(), TrainConfig())


def test_resolve_refuses_unknown_names_and_checks_the_result():
    with pytest.raises(UserError, match="unknown option.* n_layerz"):
        resolve(overrides={"n_layerz": 3})
    with pytest.raises(UserError, match="unknown preset 'fast'"):
        resolve("fast")
    with pytest.raises(UserError, match="must divide n_embd"):
        resolve(overrides={"num_heads": 3})


def test_resume_keeps_the_run_and_changes_only_resumable_fields(tmp_path):
    saved = saved_configs(saved_run(tmp_path))
    model, cfg = resolve(overrides={"eval_interval": 10, "data": ["stories.txt"]}, resumed=saved)
    assert model.n_layers == 2 and cfg.eval_interval == 10 and cfg.max_time == "10m"
    with pytest.raises(UserError, match="n_layers cannot change") as info:
        resolve(overrides={"n_layers": 8, "n_embd": 128}, resumed=saved)  # n_embd: as saved
    assert "n_embd" not in str(info.value) and ", ".join(RESUMABLE) in str(info.value)
    with pytest.raises(UserError, match="config, preset cannot change"):
        resolve("seed", "my.toml", resumed=saved)


def test_a_new_budget_replaces_the_whole_saved_budget(tmp_path):
    saved = saved_configs(saved_run(tmp_path, epochs=2.0))
    _, cfg = resolve(overrides={"max_steps": 5000}, resumed=saved)
    assert (cfg.max_steps, cfg.epochs, cfg.max_time) == (5000, None, None)
    _, cfg = resolve(resumed=saved)  # no budget given: the saved one
    assert (cfg.max_steps, cfg.epochs, cfg.max_time) == (None, 2.0, "10m")
    assert set(BUDGET) <= set(RESUMABLE)


def test_saved_configs_of_runs_from_before_the_optimizer_option_say_adamw(tmp_path):
    assert saved_configs(saved_run(tmp_path))[1].optimizer == "adamw"
    with pytest.raises(UserError, match="config.json is missing"):
        saved_configs(tmp_path)


def test_the_api_asks_for_its_resumable_fields_and_whatever_differs_from_the_defaults():
    given = given_fields(ModelConfig(n_layers=2), TrainConfig(max_steps=100))
    assert given["n_layers"] == 2 and given["max_steps"] == 100 and set(RESUMABLE) <= set(given)
    assert "n_embd" not in given and "batch_size" not in given
    assert given_fields(None, None) == {}


def test_api_resume_follows_the_same_rule_as_the_command_line(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with pytest.raises(UserError, match="n_layers cannot change"):
        train(ModelConfig(n_layers=8), None, run, resume=True, log=lambda *a: None)
    from minigpt.cli import main
    assert main(["train", "--resume", str(run), "--n-layers", "8"]) == 2


def test_range_check_messages_name_the_option():
    check_range("--top", 3, 1)
    check_range("--max-waiting", None, 0)
    for args, message in [(("--top", 0, 1), "--top must be a positive integer, got 0"),
                          (("--max-waiting", -1, 0), "--max-waiting must be >= 0, got -1"),
                          (("--port", 0, 1, 65535), "--port must be between 1 and 65535, got 0"),
                          (("temperature", float("nan"), 0.0), "temperature must be a finite number")]:
        with pytest.raises(UserError, match=message):
            check_range(*args)


def help_of(command, capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_every_option_field_is_a_command_line_option_with_its_default_shown_once(capsys):
    for command, classes in (("train", (ModelConfig, TrainConfig)), ("generate", (SampleConfig,))):
        text = help_of(command, capsys)
        for f in (f for cls in classes for f in fields(cls) if "help" in f.metadata):
            assert (f.metadata["flags"] or ("--" + f.name.replace("_", "-"),))[0] in text, f.name
        assert "(default: None)" not in text and "default 128" not in text
    assert "a sentence or two of a story (default: 128)" in help_of("train", capsys)
    assert "(default: 500)" in help_of("generate", capsys)


def test_option_names_and_aliases():
    parse = build_parser().parse_args
    args = parse(["train", "--block_size", "64", "--vocab_size", "512", "--no-bias", "--data", "a,b",
                  "--data", "c", "--max_time", "5m", "--precision", "bf16", "--preset", "seed"])
    assert (args.block_size, args.tokenizer_vocab_size, args.bias, args.max_time) == (64, 512, False, "5m")
    assert args.data == ["a", "b", "c"] and args.precision == "bf16" and args.preset == "seed"
    left_out = parse(["train"])
    assert left_out.n_layers is None and left_out.bias is None and left_out.data is None
    assert parse(["next", "Once"]).temperature == 1.0 and parse(["report"]).max_new_chars == 1500
    generate = parse(["generate", "--no-stop", "--no-cache", "--greedy", "--max-new-chars", "9"])
    assert (generate.stop_at_eos, generate.use_cache, generate.greedy) == (False, False, True)
    with pytest.raises(SystemExit):
        parse(["train", "--resume", "runs/a", "--out", "runs/b"])


def test_toml_config_flat_and_sectioned(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('n_layers = 3\nlearning_rate = 0.002\n[train]\nbatch_size = 4\n')
    sections = load_toml(path)
    assert sections["model"] == {"n_layers": 3}
    assert sections["train"] == {"learning_rate": 0.002, "batch_size": 4}
    path.write_text("n_layerz = 3\n")
    with pytest.raises(UserError, match="unknown key 'n_layerz'"):
        load_toml(path)
    path.write_text("n_layers = [\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_toml(path)


def test_config_values_of_the_wrong_type_are_refused(tmp_path):
    with pytest.raises(UserError, match="learning_rate must be of type float"):
        from_dict(TrainConfig, {"learning_rate": "fast"}, "train")
    with pytest.raises(UserError, match="n_layers must be of type int"):
        from_dict(ModelConfig, {"n_layers": 2.5}, "model")
    assert from_dict(TrainConfig, {"learning_rate": 1, "max_time": None}, "train").learning_rate == 1


def test_shipped_config_files_are_valid():
    files = sorted((ROOT / "configs").glob("*.toml"))
    assert files
    for path in files:
        resolve(toml=path)


def test_seed_preset_with_command_line_override(tmp_path, story_file):
    out = tmp_path / "run"
    result = run("train", "--preset", "seed", "--data", story_file, "--out", str(out),
                 "--max-steps", "2", *TINY)
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["learning_rate"] == 3e-4 and saved["train"]["precision"] == "fp32"
    assert saved["train"]["weight_decay"] == 0.0 and saved["train"]["min_lr_ratio"] == 1.0
    assert saved["train"]["optimizer"] == "adamw"  # the seed trained with Adam, not Muon
    assert saved["train"]["batch_size"] == 8  # the command line wins over the preset
    assert saved["model"]["n_embd"] == 32
    bad = run("train", "--preset", "fastest", "--data", story_file, "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "invalid choice: 'fastest'" in bad.stderr

# issue 19: one validation layer, with bounds that say what is sane

EDGE_FIELDS = [  # (dataclass, field, value, text in the error): floats finite, integers bounded
    (TrainConfig, "epochs", float("inf"), "finite"), (TrainConfig, "seed", 2**64, "between 0 and"),
    (TrainConfig, "seed", -1, "seed must be >= 0"), (TrainConfig, "batch_size", 2**40, "between 1"),
    (TrainConfig, "threads", 2**32, "between 1 and 1024"), (TrainConfig, "beta1", 2.0, "beta1 must be in"),
    (TrainConfig, "beta2", float("nan"), "beta2 must be in"),
    (TrainConfig, "weight_decay", float("nan"), "weight_decay must be a finite"),
    (TrainConfig, "learning_rate", 1e308, "at most"), (TrainConfig, "grad_clip", float("inf"), "finite"),
    (TrainConfig, "keep_checkpoints", 10**20, "between 1 and"), (TrainConfig, "max_steps", 2**64, "between"),
    (TrainConfig, "device", "tpu", "device must be"), (TrainConfig, "device", "", "device must be"),
    (TrainConfig, "device", "cuda:x", "device must be"), (TrainConfig, "max_time", "9" * 30, "cannot read"),
    (TrainConfig, "max_time", "100000h", "more than a year"), (TrainConfig, "data", [""], "empty data spec"),
    (TrainConfig, "learning_rate", 2**2000, "between"),
    (ModelConfig, "n_layers", 200000, "between 1 and"), (ModelConfig, "block_size", 2**64, "between 1"),
    (ModelConfig, "dropout", float("nan"), "dropout must be in"),
    (SampleConfig, "temperature", float("inf"), "finite"), (SampleConfig, "seed", 2**64, "between 0"),
    (SampleConfig, "max_new_tokens", 2**40, "between 0"), (SampleConfig, "top_p", float("nan"), "top_p"),
    (SampleConfig, "num_samples", 2**40, "between 1"), (SampleConfig, "top_k", True, "positive integer"),
]


@pytest.mark.parametrize("cls, name, value, expected", EDGE_FIELDS,
                         ids=[f"{c.__name__}.{n}={v!r:.20}" for c, n, v, _ in EDGE_FIELDS])
def test_edge_values_are_refused_by_the_dataclasses(cls, name, value, expected):
    with pytest.raises(UserError, match=None) as info:
        cls(**{name: value}).validate()
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_toml_edge_values_are_refused_by_the_same_checks(tmp_path):
    from minigpt.config import resolve

    for text, expected in [("[train]\nbeta1 = 2.0\n", "beta1 must be in"), ("epochs = inf\n", "finite"),
                           ("seed = 9223372036854775808\n", "between 0"), ("weight_decay = nan\n", "finite"),
                           ("[model]\nblock_size = 200000\n", "of memory")]:
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(UserError, match=expected):
            resolve(toml=path)
    with pytest.raises(UserError, match="--config is empty"):
        resolve(toml="")


def test_memory_is_estimated_before_allocating_and_refused_with_the_estimate():
    from minigpt.config import check_memory, check_training, machine_memory, memory_estimate

    small = memory_estimate(ModelConfig(vocab_size=97), 16, training=True)
    assert 0 < small["total"] < 2**30  # the default model trains in well under a GB
    assert memory_estimate(ModelConfig(), 16)["activations"] < small["activations"]
    ram = machine_memory()
    assert ram is None or ram > 2**28
    with pytest.raises(UserError, match=r"block_size 200000.*GiB of memory.*this machine has 1.0 GiB"):
        check_memory(ModelConfig(block_size=200000), available=2**30)
    with pytest.raises(UserError, match="training on batches of 65536"):
        check_training(ModelConfig(), TrainConfig(batch_size=65536 * 4, grad_accum=4))
    check_memory(ModelConfig(), 16, training=True, available=2**32)  # fits: no error


@pytest.mark.parametrize("options", [{}, {"bias": False}, {"positions": "rope"},
                                     {"value_embeddings": True, "tie_head": True},
                                     {"norm": "rmsnorm", "qk_norm": True, "x0_mixing": True},
                                     {"norm": "rmsnorm", "bias": False, "positions": "rope"}])
def test_the_memory_estimate_counts_the_parameters_every_ladder_option_builds(options):
    from minigpt.config import CLASSIC, memory_estimate
    from minigpt.config.limits import parameter_count
    from minigpt.model import MiniGPT

    config = ModelConfig(vocab_size=71, n_embd=64, num_heads=4, n_layers=3, block_size=32, **options)
    assert parameter_count(config) == MiniGPT(config).num_parameters()
    # a tied head or rotary positions are fewer weights, value embeddings more
    seed = dict(vocab_size=71, **CLASSIC)
    base = memory_estimate(ModelConfig(**seed))["weights"]
    assert memory_estimate(ModelConfig(**{**seed, "tie_head": True}))["weights"] < base
    assert memory_estimate(ModelConfig(**{**seed, "positions": "rope"}))["weights"] < base
    assert memory_estimate(ModelConfig(**{**seed, "value_embeddings": True}))["weights"] > base


def test_device_names_are_checked_in_one_place_and_pick_device_agrees():
    from minigpt.config import check_device
    from minigpt.device import pick_device

    for name in ("auto", "cpu", "cuda", "cuda:0", "mps"):
        assert check_device(name) == name
    for name in ("tpu", "", "cuda:", "cuda:-1", "cuda:99999", " cpu", "cpu\n", "CPU"):
        with pytest.raises(UserError, match="device must be"):
            check_device(name)
        with pytest.raises(UserError, match="device must be"):
            pick_device(name)
    with pytest.raises(UserError, match="cuda:99"):
        pick_device("cuda:99")  # no such GPU here (none at all, or fewer than 100)


def test_a_prompt_character_cleaning_would_drop_is_an_error_naming_it():
    from minigpt.prompt import prompt_text

    for prompt, shown in [("\U0001F600", "'\U0001F600'"), ("\u05e9\u05dc\u05d5\u05dd", "'\u05e9'"),
                          ("Once \u4f60\u597d", "'\u4f60', '\u597d'"), ("a\x00b", "'\\x00'")]:
        with pytest.raises(UserError, match=re.escape(shown)):
            prompt_text(prompt)
    # mapped, not refused: accents, typographic punctuation, mojibake, invisible joiners
    assert prompt_text("caf\u00e9 \u201chi\u201d \u2014 \u00e2\u20ac\u0153ok\u2026\u200d") == 'cafe "hi" - "ok...'


def test_cli_errors_are_one_line_even_for_values_holding_line_breaks(tmp_path, capsys, monkeypatch):
    from minigpt.cli import main

    monkeypatch.chdir(tmp_path)
    for argv in (["train", "--config", "a\nb.toml"], ["train", "--resume", ""], ["train", "--out", " "],
                 ["generate", "--checkpoint", ""], ["train", "x\u2028y"], ["eval", "--data", "x",
                                                                           "--max-chars=-5"]):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1, (argv, err)
    assert list(tmp_path.iterdir()) == []
