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
from .config import ModelConfig, from_dict
from .errors import UserError
from .files import read_json as _read_json_file
from .files import regular_file
from .model import MiniGPT
from .tokenizer import Tokenizer, load_tokenizer

CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer.json"
TRAIN_STATE, STATE, CHECKPOINTS = "train_state.safetensors", "state.json", "checkpoints"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


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
    _check_shapes(model_config, tensors, run_dir / WEIGHTS)  # before allocating the model
    model = MiniGPT(model_config)
    load_weights(model, run_dir / WEIGHTS, tensors)
    model.to(device).eval()
    return model, tokenizer, config


def read_run_config(run_dir: Path) -> dict:
    """config.json of a run or model directory: a JSON object with a "model" object and, when
    present, a "train" object; anything else is a UserError naming the file."""
    path = run_dir / CONFIG
    config = read_json(path)
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
    model_config = from_dict(ModelConfig, values, f"{path} model")
    try:
        model_config.validate()
    except UserError as exc:
        raise UserError(f"{path} model: {exc}; the file is damaged or was edited") from None
    if model_config.vocab_size < 1:
        raise UserError(f"{path} model: vocab_size must be a positive integer, got "
                        f"{model_config.vocab_size}; the file is damaged or was edited")
    return model_config


def _check_shapes(model_config: ModelConfig, tensors: dict[str, torch.Tensor], path: Path) -> None:
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


def load_weights(model: MiniGPT, path: Path, tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Copy a model.safetensors file into `model`, refusing weights of another shape and
    weights that are not finite (NaN or inf would write empty stories)."""
    tensors = read_tensors(path) if tensors is None else tensors
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"{path}: tensor {name} holds NaN or infinite values; the weights are "
                            "damaged (use an earlier checkpoint or train again)")
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
            state = _checked_state(directory / STATE, resuming=True)
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
    return _checked_state(candidates[0] / STATE)


def _checked_state(path: Path, resuming: bool = False) -> dict:
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


def find_latest_run(root: str | Path = "runs") -> Path:
    """The run directory under `root` whose checkpoint was written most recently."""
    root = Path(root)
    done = [p.parent for p in root.glob(f"*/{WEIGHTS}")] if root.is_dir() else []
    if not done:
        raise UserError(f"no trained checkpoint under {root}/ yet: run `python train.py` "
                        "or `minigpt train` first")
    return max(done, key=lambda p: (p / WEIGHTS).stat().st_mtime)
