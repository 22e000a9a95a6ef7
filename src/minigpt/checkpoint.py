"""The run directory: one format, written by training and read by everything else.

    runs/<name>/
      config.json            model + training config, tokenizer kind, versions (written once)
      tokenizer.json         the vocabulary (written once)
      model.safetensors      the latest weights: what generate, eval and the API load
      checkpoints/
        step-00000500/       one training checkpoint: model.safetensors, train_state.safetensors
        step-00000750/       (optimizer moments, RNG states) and state.json (step, time, losses);
        step-00001000/       the newest `keep_checkpoints` (default 3) are kept
        best/                the checkpoint with the lowest held-out loss so far
      metrics.jsonl          one JSON object per logged step
      samples.txt            the sample stories printed during training
      data/                  the run's prepared token ids (train.bin, val.bin, meta.json)
      .lock                  held by the training run writing here (rundir.py); left behind after
                             it, and ignored by everything that reads a run

Safety rules, each with a reason:
- Weights are safetensors and metadata is JSON: loading never unpickles, so a shared checkpoint can
  never run code. Pickle files are refused by name before anything reads them.
- Every .safetensors file carries a SHA-256 of its tensors in its own header, checked on load, so
  a truncated or bit-flipped file is an error that names it instead of a silently wrong model.
- A file is written to a temporary name, fsynced and renamed over the old one; a checkpoint
  directory is assembled under a temporary name and renamed into place. A crash at any moment
  leaves the previous checkpoint whole, and `--resume` skips a damaged one for the one before.
- Every file is checked as it is read (runfiles.py, which also names the files above): config.json
  field by field, the weights' names, shapes and finite values, state.json; damage is a UserError
  naming the file and the field, never a traceback or a silently wrong model.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shutil
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .config import ModelConfig
from .errors import UserError
from .files import regular_file
from .model import MiniGPT
from .runfiles import (CHECKPOINTS, CONFIG, STATE, TOKENIZER, TRAIN_STATE, WEIGHTS, check_finite,
                       check_run_dir, check_shapes, checked_state, read_run_config, saved_model_config)
from .tokenizer import Tokenizer, load_tokenizer


def _fsync(path: Path) -> None:
    """Flush a file (or a directory entry) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), fsync it, then rename it over `path` in one step. A file replaced
    keeps its permission bits (the rename alone would give it the new file's: a 600 file would
    become readable by all, a script would lose its run bit)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        _fsync(tmp)
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass  # a new file: the mode write() gave it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8"))


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically save tensors with their checksum in the file's own header."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": "pt", "sha256": tensor_digest(tensors)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a .safetensors file and verify its checksum; any damage is a UserError naming it."""
    if not path.exists():
        raise UserError(f"{path} is missing: the run has no saved checkpoint yet")
    regular_file(path, "weights file")  # safe_open of a FIFO would wait forever
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({exc}); "
                        "it is truncated or corrupted") from None
    expected = meta.get("sha256")
    if expected is not None and tensor_digest(tensors) != expected:
        raise UserError(f"{path} is corrupted: its tensors do not match the checksum in its header")
    return tensors


def save_run_config(run_dir: Path, model_config: ModelConfig, train_config: dict,
                    tokenizer: str = "char") -> None:
    """config.json: everything needed to rebuild the model, plus how it was trained."""
    write_json(run_dir / CONFIG, {
        "model": model_config.__dict__, "train": train_config, "tokenizer": tokenizer,
        "minigpt_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    })


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's step checkpoints, newest first."""
    root = run_dir / CHECKPOINTS
    found = [p for p in root.glob("step-*") if p.is_dir()] if root.is_dir() else []
    return sorted(found, key=lambda p: p.name, reverse=True)


def save_checkpoint(run_dir: Path, model: MiniGPT, optimizer: torch.optim.Optimizer, state: dict,
                    rng: dict[str, torch.Tensor], keep: int = 3, is_best: bool = False) -> Path:
    """Write checkpoints/step-N (then best/ and the top-level weights); prune to `keep`.

    Raises UserError when the disk refuses (full, read-only): the previous checkpoint is intact.
    """
    root = run_dir / CHECKPOINTS
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".tmp-{final.name}"
    try:
        root.mkdir(exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        weights = model.state_dict()
        write_tensors(tmp / WEIGHTS, weights)
        tensors, groups = _flatten_optimizer(optimizer)
        tensors.update({f"rng.{name}": value for name, value in rng.items()})
        write_tensors(tmp / TRAIN_STATE, tensors)
        write_json(tmp / STATE, dict(state, optimizer_param_groups=groups))
        if final.exists():  # the same step saved again after a resume
            shutil.rmtree(final)
        os.rename(tmp, final)  # the checkpoint appears whole or not at all
        _fsync(root)
        if is_best:
            _replace_dir(final, root / "best")
        _link_or_copy(final / WEIGHTS, run_dir / WEIGHTS)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise UserError(f"could not write a checkpoint in {root}: {reason}; the previous "
                        "checkpoint is intact") from None
    for old in checkpoint_dirs(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _replace_dir(source: Path, target: Path) -> None:
    """Make `target` a copy of directory `source`, never leaving a half-copied `target`."""
    tmp = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    old = target.with_name(f".old-{target.name}")
    if target.exists():
        os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """Atomically make `target` the same bytes as `source` (a hard link where the disk allows)."""
    def write(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    atomic_write(target, write)


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


def load_model(run_dir: str | Path, device: torch.device | str = "cpu"
               ) -> tuple[MiniGPT, Tokenizer, dict]:
    """Rebuild the model from a run directory: (model in eval mode, tokenizer, config.json)."""
    run_dir = check_run_dir(run_dir)
    config = read_run_config(run_dir)
    model_config = saved_model_config(run_dir / CONFIG, config["model"])
    tokenizer = load_tokenizer(run_dir / TOKENIZER)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise UserError(f"{run_dir}: tokenizer.json has {tokenizer.vocab_size} symbols but the model "
                        f"expects {model_config.vocab_size}; the files come from different runs")
    tensors = read_tensors(run_dir / WEIGHTS)
    check_shapes(model_config, tensors, run_dir / WEIGHTS)  # before allocating the model
    model = MiniGPT(model_config)
    load_weights(model, run_dir / WEIGHTS, tensors)
    model.to(device).eval()
    return model, tokenizer, config


def load_weights(model: MiniGPT, path: Path, tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Copy a model.safetensors file into `model`, refusing weights of another shape and
    weights that are not finite (NaN or inf would write empty stories)."""
    tensors = read_tensors(path) if tensors is None else tensors
    check_finite(path, tensors)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path} does not match config.json ({first})") from None


def load_train_state(run_dir: Path, model: MiniGPT, optimizer: torch.optim.Optimizer,
                     log=print) -> tuple[dict, dict]:
    """Restore model and optimizer from the newest undamaged checkpoint; return (state, RNG).

    A damaged checkpoint (truncated, corrupted, half-deleted) is reported and skipped in favour
    of the one before it.
    """
    candidates = checkpoint_dirs(run_dir)
    if not candidates:
        raise UserError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINTS}/ is empty)")
    for directory in candidates:
        try:
            state = checked_state(directory / STATE, resuming=True)
            tensors = read_tensors(directory / TRAIN_STATE)
            load_weights(model, directory / WEIGHTS)
            optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer_param_groups"]))
        except (UserError, KeyError, ValueError, TypeError, IndexError) as exc:
            log(f"skipping damaged checkpoint {directory.name}: {exc}")
            continue
        rng = {k.removeprefix("rng."): v for k, v in tensors.items() if k.startswith("rng.")}
        return state, rng
    raise UserError(f"every checkpoint in {run_dir / CHECKPOINTS} is damaged; nothing to resume")


def latest_state(run_dir: str | Path) -> dict:
    """state.json of the newest checkpoint of a run (step, elapsed_s, losses)."""
    candidates = checkpoint_dirs(Path(run_dir))
    if not candidates:
        raise UserError(f"{run_dir} has no checkpoint yet")
    return checked_state(candidates[0] / STATE)


def find_latest_run(root: str | Path = "runs") -> Path:
    """The run directory under `root` whose checkpoint was written most recently."""
    root = Path(root)
    done = [p.parent for p in root.glob(f"*/{WEIGHTS}")] if root.is_dir() else []
    if not done:
        raise UserError(f"no trained checkpoint under {root}/ yet: run `python train.py` "
                        "or `minigpt train` first")
    return max(done, key=lambda p: (p / WEIGHTS).stat().st_mtime)
