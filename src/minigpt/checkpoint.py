"""The run directory: one format, written by training and read by everything else.

    runs/<name>/
      config.json              model + training config, tokenizer kind, versions
      model.safetensors        weights (safetensors: loading can never run code, unlike pickle)
      tokenizer.json           the vocabulary
      train_state.safetensors  optimizer tensors and RNG states
      state.json               step, best held-out loss, time trained, checksums of the two
                               .safetensors files; written last, so it marks a complete checkpoint
      metrics.jsonl            one JSON object per logged step
      samples.txt              the sample stories printed during training
      data/                    the run's prepared token ids (train.bin, val.bin, meta.json)

Every file is written to a temporary name, flushed to disk and renamed into place, so a crash
leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .config import ModelConfig, from_dict
from .errors import UserError
from .model import MiniGPT
from .tokenizer import CharTokenizer, load_tokenizer

CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer.json"
TRAIN_STATE, STATE = "train_state.safetensors", "state.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), fsync it, then rename it over `path` in one step."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing: is {path.parent} a training run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is damaged ({exc}); the run cannot be loaded") from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_run_config(run_dir: Path, model_config: ModelConfig, train_config: dict) -> None:
    """config.json: everything needed to rebuild the model, plus how it was trained."""
    write_json(run_dir / CONFIG, {
        "model": model_config.__dict__, "train": train_config, "tokenizer": "char",
        "minigpt_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    })


def save_checkpoint(run_dir: Path, model: MiniGPT, optimizer: torch.optim.Optimizer,
                    state: dict, rng: dict[str, torch.Tensor]) -> None:
    """Weights, optimizer and RNG tensors, then state.json (with checksums) as the commit mark."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(run_dir / WEIGHTS, lambda tmp: save_file(weights, str(tmp), metadata={"format": "pt"}))
    tensors, groups = _flatten_optimizer(optimizer)
    tensors.update({f"rng.{name}": value for name, value in rng.items()})
    atomic_write(run_dir / TRAIN_STATE, lambda tmp: save_file(tensors, str(tmp)))
    state = dict(state, optimizer_param_groups=groups,
                 sha256={WEIGHTS: sha256(run_dir / WEIGHTS), TRAIN_STATE: sha256(run_dir / TRAIN_STATE)})
    write_json(run_dir / STATE, state)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = optimizer.state_dict()
    tensors = {}
    for index, slots in sd["state"].items():
        for key, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": groups}


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


def load_model(run_dir: str | Path, device: torch.device | str = "cpu"
               ) -> tuple[MiniGPT, CharTokenizer, dict]:
    """Rebuild the model from a run directory: (model in eval mode, tokenizer, config.json)."""
    run_dir = check_run_dir(run_dir)
    config = read_json(run_dir / CONFIG)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise UserError(f"{run_dir / CONFIG} has no 'model' section; the run cannot be loaded")
    model_config = from_dict(ModelConfig, config["model"], f"{run_dir / CONFIG} model")
    tokenizer = load_tokenizer(run_dir / TOKENIZER)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise UserError(f"{run_dir}: tokenizer.json has {tokenizer.vocab_size} symbols but the model "
                        f"expects {model_config.vocab_size}; the files come from different runs")
    model = MiniGPT(model_config)
    load_weights(model, run_dir)
    model.to(device).eval()
    return model, tokenizer, config


def load_weights(model: MiniGPT, run_dir: Path) -> None:
    """Copy model.safetensors into `model`, refusing weights of another shape."""
    weights = _load_tensors(run_dir / WEIGHTS)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{run_dir / WEIGHTS} does not match config.json ({first})") from None


def load_train_state(run_dir: Path, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Restore the optimizer in place; return (state.json, RNG tensors) for the trainer."""
    state = read_json(run_dir / STATE)
    for name, expected in state.get("sha256", {}).items():
        if sha256(run_dir / name) != expected:
            raise UserError(f"{run_dir / name} does not match the checksum in state.json: "
                            "the checkpoint is corrupted or was written by another run")
    tensors = _load_tensors(run_dir / TRAIN_STATE)
    optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer_param_groups"]))
    rng = {k.removeprefix("rng."): v for k, v in tensors.items() if k.startswith("rng.")}
    return state, rng


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise UserError(f"{path} is missing: the run has no saved checkpoint yet")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({exc})") from None


def find_latest_run(root: str | Path = "runs") -> Path:
    """The run directory under `root` whose checkpoint was written most recently."""
    root = Path(root)
    done = [p.parent for p in root.glob(f"*/{STATE}")] if root.is_dir() else []
    if not done:
        raise UserError(f"no trained checkpoint under {root}/ yet: run `python train.py` "
                        "or `minigpt train` first")
    return max(done, key=lambda p: (p / STATE).stat().st_mtime)
