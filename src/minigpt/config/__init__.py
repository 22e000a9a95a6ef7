"""Configuration, in one place: the knobs (knobs.py), their bounds (limits.py) and where their
values come from (layers.py).

    knobs.py    ModelConfig, TrainConfig, SampleConfig: every knob, its default, its --help line
                and its checks (validate())
    limits.py   what is sane: the MAX_* bounds, check_range (the one range check), device names,
                durations, and the memory a model and batch need (memory_estimate, check_memory)
    layers.py   resolve(preset, toml, overrides, resumed): defaults < preset < TOML < options,
                and the rules of resuming a run (RESUMABLE); check_training: the memory a run needs;
                the presets, with the seed's architecture (CLASSIC) and the ladder's (MODERN)
"""

from .knobs import ModelConfig, SampleConfig, TrainConfig, option
from .limits import (check_device, check_memory, check_range, machine_memory, memory_estimate,
                     parse_duration)
from .layers import (BUDGET, CLASSIC, MODERN, PRESETS, RESUMABLE, check_training, from_dict,
                     given_fields, load_toml, merged, resolve, saved_configs, saved_model_fields)

__all__ = ["BUDGET", "CLASSIC", "MODERN", "PRESETS", "RESUMABLE", "ModelConfig", "SampleConfig",
           "TrainConfig", "check_device", "check_memory", "check_range", "check_training", "from_dict",
           "given_fields", "load_toml", "machine_memory", "memory_estimate", "merged", "option",
           "parse_duration", "resolve", "saved_configs", "saved_model_fields"]
