"""Where a run's settings come from, in increasing priority:

    dataclass defaults  <  a named preset (--preset)  <  a TOML file (--config)  <  options

`resolve` applies the layers and holds the rules of resuming a run (RESUMABLE); the command line
and the Python API's train() both go through it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import regular_file
from .knobs import ModelConfig, SampleConfig, TrainConfig
from .limits import check_memory


# The seed's architecture (GPT-2's block: learned positions, LayerNorm, ReLU, an untied head),
# as ModelConfig's ladder fields (ladder.py). A config.json saved before a field existed was
# trained with its value here, so loading a run fills in missing fields from this, not from
# whatever today's default is.
CLASSIC: dict[str, Any] = {"activation": "relu", "norm": "layernorm", "qk_norm": False,
                           "positions": "learned", "value_embeddings": False, "x0_mixing": False,
                           "zero_init": False, "tie_head": False, "logit_softcap": None}
# The ladder's winners combined (docs/ladder.md): rotary positions and a GELU MLP, which
# train best at a higher peak learning rate than the seed's blocks (the "modern" preset).
MODERN: dict[str, Any] = {**CLASSIC, "positions": "rope", "activation": "gelu"}

# Named recipes. The dataclass defaults *are* the "default" preset, and "modern" names them: the
# recipe that reached the lowest held-out bits/char in a fixed CPU budget (docs/performance.md,
# docs/ladder.md).
# "classic" is the seed's architecture with the same training (the default until the ladder beat it);
# "adamw" is the best recipe without Muon; "seed" is the recipe the project started from.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"about": "the best recipe we measured for a laptop CPU (the defaults)",
                "model": {}, "train": {}},
    "classic": {"about": "the seed's architecture (learned positions, ReLU) at its best learning "
                "rate, 4.5e-3: the default until the ladder's winners beat it",
                "model": dict(CLASSIC), "train": {"learning_rate": 4.5e-3}},
    "modern": {"about": "the ladder's winners (rotary positions, GELU) at learning rate 6e-3: "
               "the defaults", "model": dict(MODERN), "train": {"learning_rate": 6e-3}},
    "adamw": {"about": "the best AdamW-only recipe: the classic preset with AdamW at 2e-3",
              "model": dict(CLASSIC), "train": {"optimizer": "adamw", "learning_rate": 2e-3}},
    "seed": {"about": "the seed's recipe: 4 x 128, block 128, batch 32, Adam 3e-4 constant, fp32",
             "model": {"block_size": 128, "n_embd": 128, "num_heads": 4, "n_layers": 4,
                       "ff_hidden_mult": 4, "dropout": 0.0, **CLASSIC},
             "train": {"optimizer": "adamw", "batch_size": 32, "learning_rate": 3e-4,
                       "warmup_steps": 0, "min_lr_ratio": 1.0, "weight_decay": 0.0, "beta2": 0.999,
                       "grad_clip": 0.0, "precision": "fp32"}},
}

# Options that may change when a run is resumed; everything else comes from the run.
RESUMABLE = ("epochs", "max_steps", "max_time", "eval_interval", "eval_batches", "sample_chars",
             "keep_checkpoints", "plot_loss", "tensorboard", "device", "threads")
BUDGET = ("epochs", "max_steps", "max_time")  # given together or not at all: one budget


def resolve(preset: str | None = None, toml: str | Path | None = None,
            overrides: dict[str, Any] | None = None,
            resumed: tuple[ModelConfig, TrainConfig] | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The checked (ModelConfig, TrainConfig) of a run: the defaults, then the named `preset`,
    then the TOML file `toml`, then `overrides` (field name -> value; None means "not given").

    `resumed` is the pair a run was saved with (`saved_configs(run_dir)`). Resuming continues the
    run as it was saved: no preset or file, and only the RESUMABLE fields may take a new value (a
    value equal to the saved one is no change). A new budget (any of epochs, max_steps, max_time)
    replaces the whole saved budget, so `--resume RUN --max-steps 5000` means "go to 5000".
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(given) - model_keys - train_keys)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)}")
    layers = [{"model": {k: v for k, v in given.items() if k in model_keys},
               "train": {k: v for k, v in given.items() if k in train_keys}}]
    if resumed is None:
        model_cfg, cfg = ModelConfig(), TrainConfig()
        layers[:0] = [_preset(preset), load_toml(toml) if toml is not None else {"model": {}, "train": {}}]
        if layers[1].get("sample"):  # a [sample] table is checked too, never silently ignored
            merged(SampleConfig(), layers[1]["sample"], f"config file {toml} sample").validate()
    else:
        model_cfg, cfg = resumed
        _check_resumable(model_cfg, cfg, given, preset, toml)
        if any(k in given for k in BUDGET):
            cfg = dataclasses.replace(cfg, **{k: None for k in BUDGET})
    for layer in layers:
        model_cfg = merged(model_cfg, layer["model"], "model")
        cfg = merged(cfg, layer["train"], "train")
    model_cfg.validate()
    cfg.validate()
    check_training(model_cfg, cfg)
    return model_cfg, cfg


def check_training(model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """Refuse a model and batch whose training needs more than this machine's memory, with the
    estimate, before anything is allocated (limits.check_memory). A micro-batch is
    batch_size / grad_accum windows (under torchrun, each process holds a share of that)."""
    check_memory(model_cfg, -(-cfg.batch_size // cfg.grad_accum), training=True)


def _check_resumable(model_cfg: ModelConfig, cfg: TrainConfig, given: dict[str, Any],
                     preset: str | None, toml: str | Path | None) -> None:
    """Refuse, in one line, whatever would change a resumed run other than RESUMABLE fields."""
    saved = {**dataclasses.asdict(model_cfg), **dataclasses.asdict(cfg)}
    fixed = [k for k, v in given.items() if k not in RESUMABLE and v != saved[k]]
    fixed += [name for name, value in (("preset", preset), ("config", toml)) if value is not None]
    if fixed:
        raise UserError(f"--resume continues a run as it was saved; {', '.join(sorted(fixed))} "
                        f"cannot change (only {', '.join(RESUMABLE)} can)")


def saved_configs(run_dir: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """The (ModelConfig, TrainConfig) a run was saved with, from its config.json."""
    from ..runfiles import CONFIG, check_run_dir, read_run_config  # runfiles.py imports this module

    run_dir = check_run_dir(run_dir)
    saved = read_run_config(run_dir)  # an object with a "model" object, or a UserError naming it
    train = dict(saved.get("train", {}))
    train.setdefault("optimizer", "adamw")  # runs from before the choice all trained with AdamW
    return (from_dict(ModelConfig, saved_model_fields(saved["model"]), f"{run_dir}/{CONFIG} model"),
            from_dict(TrainConfig, train, f"{run_dir}/{CONFIG} train"))


def saved_model_fields(values: dict[str, Any]) -> dict[str, Any]:
    """A saved "model" section with the ladder fields it predates filled in from CLASSIC: a
    run saved before a field existed was trained with the seed's choice."""
    if not isinstance(values, dict):
        return values
    return {**{k: v for k, v in CLASSIC.items() if k not in values}, **values}


def given_fields(model_cfg: ModelConfig | None, cfg: TrainConfig | None) -> dict[str, Any]:
    """What a Python caller of train(resume=True) asks for, as `resolve` overrides: every
    RESUMABLE field of `cfg` and any other field that differs from its default."""
    given: dict[str, Any] = {}
    for config in (model_cfg, cfg):
        if config is not None:
            default = type(config)()
            given.update({f.name: getattr(config, f.name) for f in fields(config)
                          if getattr(config, f.name) != getattr(default, f.name)})
    if cfg is not None:
        given.update({k: getattr(cfg, k) for k in RESUMABLE})
    return given


def _preset(name: str | None) -> dict[str, dict[str, Any]]:
    """The model and train overrides of a named preset (none for None)."""
    if name is None:
        return {"model": {}, "train": {}}
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return {"model": dict(PRESETS[name]["model"]), "train": dict(PRESETS[name]["train"])}


def from_dict(cls, values: dict[str, Any], where: str):
    """Build dataclass `cls` from `values`, refusing unknown keys and wrong types."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown {where} key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for key, value in values.items():
        if not _type_ok(str(known[key].type), value):
            raise UserError(f"{where} {key} must be of type {known[key].type}, got {value!r}")
    return cls(**values)


def _type_ok(annotation: str, value: Any) -> bool:
    """Does `value` fit a simple annotation such as 'int', 'float | None' or 'list[str]'?"""
    checks = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
              "None": lambda v: v is None,
              "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)}
    return any(checks[part.strip()](value) for part in annotation.split("|"))


def load_toml(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a config file with optional [model], [train] and [sample] tables.

    Keys outside a table are sorted into the right one by name, so a flat file works too.
    """
    if not str(path).strip():
        raise UserError("--config is empty: name a TOML file")
    path = Path(path)
    try:
        raw = tomllib.loads(regular_file(path, "config file").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise UserError(f"config file {path} nests arrays or tables too deeply to be a config") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UserError(f"config file {path} is not valid TOML here ({str(exc).split(':')[0]})") from None
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "sample": {}}
    owners = {"model": ModelConfig, "train": TrainConfig, "sample": SampleConfig}
    for key, value in raw.items():
        if key in sections and isinstance(value, dict):
            sections[key].update(value)
            continue
        for name, cls in owners.items():
            if key in {f.name for f in fields(cls)}:
                sections[name][key] = value
                break
        else:
            raise UserError(f"config file {path}: unknown key {key!r}")
    return sections


def merged(base, overrides: dict[str, Any], where: str):
    """A copy of dataclass `base` with `overrides` applied (None values are ignored)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    current = dataclasses.asdict(base)
    current.update(values)
    return from_dict(type(base), current, where)
