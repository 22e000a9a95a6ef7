"""The files of a run directory: their names, and the checks each one gets as it is read.

checkpoint.py draws the layout and writes and loads a run; this module holds what loading
trusts nothing without. A run directory comes from a disk, a download or a hand edit, so every
file is checked before it is used, with a UserError that names the file and the field:

- the path itself: a pickle file is refused by name (loading one can run code), and a path that
  is not a directory is refused before anything is opened (`check_run_dir`);
- config.json: a JSON object with a "model" object, every model field checked for type and range
  (`read_run_config`, `saved_model_config`);
- model.safetensors: the tensor names and shapes config.json implies, checked on the meta device
  before the model is allocated (`check_shapes`), and finite values (`check_finite`);
- state.json of a checkpoint: its step, times, losses and optimizer groups (`checked_state`).

(tokenizer.json is checked by tokenizer.py, the prepared data/*.bin against meta.json by
data/dataset.py, and each tensor file's checksum by checkpoint.read_tensors.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig, from_dict, saved_model_fields
from .errors import UserError
from .files import read_json as _read_json_file
from .model import MiniGPT

# The names of a run directory's files (checkpoint.py's docstring draws where each one lives).
CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer.json"
TRAIN_STATE, STATE, CHECKPOINTS = "train_state.safetensors", "state.json", "checkpoints"
# The prepared data (data/) and the lock file the training run writing here holds (rundir.py).
# filelock leaves the lock file in place after the run (deleting a lock file others may have open
# is what makes two holders possible); everything that reads a run ignores it.
DATA, LOCK = "data", ".lock"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


def check_run_dir(path: str | Path) -> Path:
    """Refuse pickle files and non-directories before anything tries to read them."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(f"{path}: pickle checkpoints are never loaded (loading one can run arbitrary "
                        "code); give a run directory with model.safetensors")
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; train one first with `minigpt train`")
    if not path.is_dir():
        raise UserError(f"checkpoint {path} is not a run directory (expected config.json, "
                        "model.safetensors and tokenizer.json inside it)")
    return path


def read_json(path: Path) -> Any:
    """A JSON file of a run directory (regular file, bounded nesting); any damage names it."""
    try:
        return _read_json_file(path)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: is {path.parent} a training run directory?") from None
    except UserError as exc:
        if str(exc).startswith(f"{path} is not valid JSON"):
            raise UserError(f"{path} is damaged: {str(exc)[len(str(path)) + 4:]}; "
                            "the run cannot be loaded") from None
        raise


def read_run_config(run_dir: Path) -> dict:
    """config.json of a run or model directory: a JSON object with a "model" object and, when
    present, a "train" object; anything else is a UserError naming the file."""
    path = run_dir / CONFIG
    config = read_json(path)
    if isinstance(config, dict) and isinstance(config.get("model_type"), str) and "model" not in config:
        raise UserError(f"{run_dir} is a transformers model (model_type {config['model_type']!r}, as "
                        "`minigpt export --format transformers` writes): load it with transformers' "
                        "AutoModelForCausalLM (import minigpt.hf first for model_type 'minigpt')")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise UserError(f"{path} has no 'model' section; the run cannot be loaded")
    if not isinstance(config.get("train", {}), dict):
        raise UserError(f"{path}: 'train' must be an object, got {config['train']!r:.40}; "
                        "the run cannot be loaded")
    return config


def saved_model_config(path: Path, values: Any) -> ModelConfig:
    """The "model" section of a config.json, every field checked (types, then ranges) with an
    error naming the file and the field."""
    if not isinstance(values, dict):
        raise UserError(f"{path}: 'model' must be an object, got {values!r}; the run cannot be loaded")
    model_config = from_dict(ModelConfig, saved_model_fields(values), f"{path} model")
    try:
        model_config.validate()
    except UserError as exc:
        raise UserError(f"{path} model: {exc}; the file is damaged or was edited") from None
    if model_config.vocab_size < 1:
        raise UserError(f"{path} model: vocab_size must be a positive integer, got "
                        f"{model_config.vocab_size}; the file is damaged or was edited")
    return model_config


def check_shapes(model_config: ModelConfig, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights whose names or shapes differ from the model config.json describes, by
    building that model on the meta device (no memory), so an edited n_embd of 10**9 costs
    nothing."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in MiniGPT(model_config).state_dict().items()}
    except RuntimeError as exc:  # sizes past what torch can even describe
        raise UserError(f"{path} does not match config.json (config.json describes a model too "
                        f"large to build: {str(exc).splitlines()[0]})") from None
    for name, shape in expected.items():
        if name not in tensors:
            raise UserError(f"{path} does not match config.json (it lacks the tensor {name})")
        if tuple(tensors[name].shape) != shape:
            raise UserError(f"{path} does not match config.json ({name} is "
                            f"{tuple(tensors[name].shape)}, config.json needs {shape})")


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or inf: they would load fine and write empty stories."""
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"{path}: tensor {name} holds NaN or infinite values; the weights are "
                            "damaged (use an earlier checkpoint or train again)")


def checked_state(path: Path, resuming: bool = False) -> dict:
    """state.json of a checkpoint: an object whose step is a count, its times and losses numbers
    (needed when `resuming`) and its optimizer groups a list; anything else is a UserError
    naming the file and the field."""
    state = read_json(path)
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a JSON object; the checkpoint is damaged")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UserError(f"{path}: step must be an integer >= 0, got {step!r}; the checkpoint is damaged")
    for key in ("elapsed_s", "best_val_nats"):
        value = state.get(key)
        if (value is not None or resuming) and (isinstance(value, bool)
                                                or not isinstance(value, (int, float))):
            raise UserError(f"{path}: {key} must be a number, got {value!r}; the checkpoint is damaged")
    if not isinstance(state.get("optimizer_param_groups", [] if not resuming else None), list):
        raise UserError(f"{path}: optimizer_param_groups must be a list; the checkpoint is damaged")
    return state
