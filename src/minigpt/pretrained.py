"""Loading a model, and Hub-style models: `load`, `save_pretrained`, the bundled model, the Hub.

A model directory holds exactly what the HuggingFace Hub layout expects, and what every run
directory already has at its top level:

    config.json          model shape, tokenizer kind, how it was trained, a summary of its scores
    model.safetensors    the weights (checksummed, never pickle)
    tokenizer.json       the tokenizer (tokenizer.py)
    words.txt            optional: the words of the training text, for `minigpt report`
    README.md            optional: the model card
    metrics.jsonl        optional: the run's learning curves (export copies them; the page draws them)

So one loader, `load(spec)`, serves every kind of checkpoint spec: the CLI's --checkpoint, the
API's `minigpt.load` and `from_pretrained`, the web server, `minigpt report` and the seed's
generate.py all go through it. `resolve(spec)` finds the directory a spec names:

- a run directory made by `minigpt train` (runs/first),
- a directory written by `save_pretrained` / `minigpt export`,
- `bundled`: the small story model shipped inside the package (minigpt/models/, MODEL_CARD.md),
- a Hub repository id (`owner/name`, or `hf://owner/name`), downloaded with `huggingface_hub`
  into its usual cache. Offline this fails within about two seconds with a message that says so
  (HF_HUB_OFFLINE=1: at once), unless the repository is already in the cache,
- None: the newest run under ./runs, or the bundled model when there is none.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import string
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

import torch

from .checkpoint import atomic_write, find_latest_run, load_model, write_json, write_tensors
from .device import pick_device
from .data import load_splits
from .errors import UserError
from .files import regular_file
from .model import MiniGPT
from .runfiles import CHECKPOINTS, CONFIG, DATA, LOCK, TOKENIZER, WEIGHTS, read_json
from .runlog import METRICS, metrics_text, read_metrics
from .tokenizer import WORD, Tokenizer, load_tokenizer

BUNDLED = "bundled"
BUNDLED_DIR = Path(__file__).resolve().parent / "models" / "tinystories-char"
WORDS = "words.txt"
CARD = "README.md"
# The files transformers' save_pretrained writes beside config.json, model.safetensors, tokenizer.json
HF_FILES = ("generation_config.json", "tokenizer_config.json", "special_tokens_map.json")
EXPORTED = (CONFIG, WEIGHTS, TOKENIZER, WORDS, CARD, METRICS, *HF_FILES)  # all that save_pretrained / export write
FORMATS = ("minigpt", "transformers")
_HUB_ID = re.compile(r"^(?:hf://)?([A-Za-z0-9][\w.-]*/[\w.-]+)$")


def load(spec: str | Path | None = None, device: torch.device | str = "auto"
         ) -> tuple[MiniGPT, Tokenizer, dict]:
    """(model in eval mode on `device`, tokenizer, config.json) for a checkpoint spec (see the
    module docstring). 'auto' takes the fastest device present (device.py)."""
    return load_model(resolve(spec), pick_device(str(device)))


def from_pretrained(source: str | Path | None = None, device: torch.device | str = "cpu"
                    ) -> tuple[MiniGPT, Tokenizer, dict]:
    """`load` with the Hub-style defaults: no source is the bundled model, on the CPU."""
    return load(BUNDLED if source is None else source, device)


def resolve(spec: str | Path | None = None) -> Path:
    """The local directory a checkpoint spec names (see the module docstring)."""
    if spec is None:
        try:
            return find_latest_run("runs")
        except UserError:
            print("no trained run under ./runs: using the bundled story model (train your own with "
                  "`minigpt train`)", file=sys.stderr)
            return resolve(BUNDLED)
    if str(spec) == BUNDLED:
        if not (BUNDLED_DIR / WEIGHTS).exists():
            raise UserError(f"the bundled model is missing from this install ({BUNDLED_DIR}); "
                            "reinstall the package or train one with `minigpt train`")
        return BUNDLED_DIR
    path = Path(spec).expanduser()
    if path.exists() or str(spec).startswith((".", "/", "~")):
        return path
    match = _HUB_ID.match(str(spec))
    if match is None:
        return path  # load_model explains what is wrong with it
    return _download(match.group(1), str(spec))


def _download(repo_id: str, given: str) -> Path:
    from .data import hub_reachable

    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise UserError(f"{given!r} is not a local directory, and loading from the Hub needs the "
                        "huggingface_hub package: pip install huggingface_hub") from None
    patterns = [CONFIG, WEIGHTS, TOKENIZER, WORDS, "README.md"]
    try:  # already downloaded: no network needed
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    if not hub_reachable():
        raise UserError(f"{given!r} is not a local directory, and the HuggingFace Hub cannot be "
                        f"reached to download it (offline?); give a run directory, 'bundled', "
                        f"or connect and try again")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise UserError(f"could not download {repo_id!r} from the Hub: {str(exc).splitlines()[0]}") from None


def save_pretrained(model: MiniGPT, tokenizer: Tokenizer, out_dir: str | Path, config: dict | None = None,
                    dtype: torch.dtype = torch.float32, words: list[str] | None = None,
                    format: str = "minigpt") -> Path:
    """Write a model directory (see the module docstring). fp16/bf16 halves the weights' size;
    they are loaded back as fp32. Only the files named in EXPORTED are written (each atomically;
    one that is replaced keeps its permissions); a directory inside a training run is refused.
    format="transformers" writes HuggingFace transformers' layout instead (hf.py)."""
    out = Path(out_dir)
    _refuse_inside_run(out)
    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "transformers":
        return _save_transformers(model, tokenizer, out, dtype)
    config = dict(config or {})
    config.update({"model": model.config.__dict__, "tokenizer": tokenizer.kind,
                   "weights_dtype": str(dtype).removeprefix("torch.")})
    writes = {WEIGHTS: lambda p: write_tensors(p, {k: v.to(dtype) if v.is_floating_point() else v
                                                   for k, v in model.state_dict().items()}),
              TOKENIZER: lambda p: atomic_write(p, tokenizer.save),
              WORDS: lambda p: atomic_write(p, lambda tmp: tmp.write_text("\n".join(words) + "\n",
                                                                         encoding="utf-8")),
              CONFIG: lambda p: write_json(p, config)}  # last: the file that marks a model
    if not words:
        del writes[WORDS]
    _write_files(out, writes)
    return out


def _save_transformers(model: MiniGPT, tokenizer: Tokenizer, out: Path, dtype: torch.dtype) -> Path:
    """transformers writes its files where it is told, one after the other: it writes them into a
    temporary directory, and each is then moved into `out` atomically, as every export file is."""
    from . import hf  # a UserError naming the package when transformers is not installed

    with tempfile.TemporaryDirectory(prefix="minigpt-hf-") as tmp:
        hf.save_transformers(model, tokenizer, Path(tmp), dtype)
        made = sorted(os.listdir(tmp))
        unknown = [name for name in made if name not in EXPORTED]
        if unknown:  # a newer transformers writing more: export must still know its own files
            raise RuntimeError(f"transformers wrote files export does not know: {unknown}")
        _write_files(out, {name: lambda p, src=Path(tmp) / name: atomic_write(
            p, lambda t: shutil.copyfile(src, t)) for name in made})
    return out


def _write_files(out: Path, writes: dict) -> None:
    """Call writes[name](out / name) for each name. New files are made readable by everyone,
    like any installed package file; a file replaced keeps its mode (atomic_write). If one
    fails, the files and the directory this call created are removed again."""
    made = [p for p in (out, *out.parents) if not p.exists()]
    new = [out / name for name in writes if not (out / name).exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, write in writes.items():
            write(out / name)
        for path in new:
            path.chmod(0o644)
    except BaseException as exc:
        for path in new:
            with suppress(OSError):
                path.unlink()
        for path in made:  # innermost first; kept if something else appeared in it
            with suppress(OSError):
                path.rmdir()
        if isinstance(exc, OSError):  # a folder under a file, a full or read-only disk
            raise UserError(f"cannot write the model to {out}: {exc.strerror or exc}") from None
        raise


def _refuse_inside_run(out: Path) -> None:
    """A training run's directory, and every directory under it (checkpoints/, data/), belongs to
    the run: an export there would mix its files with the run's, or be pruned with a checkpoint.
    A run is config.json beside its checkpoints/, its prepared data/ or its .lock (metrics.jsonl
    alone is no sign: an exported model carries the run's curves too)."""
    target = out.resolve()
    for path in (target, *target.parents):
        if (path / CONFIG).is_file() and ((path / CHECKPOINTS).is_dir() or (path / DATA).is_dir()
                                          or (path / LOCK).exists()):
            if path == target:
                raise UserError(f"{out} already holds a training run; export to a new directory "
                                "outside it")
            raise UserError(f"{out} is inside the training run {path}; export to a directory "
                            "outside it")


def _check_export_dir(out: Path, force: bool) -> None:
    """export writes into a new or empty directory, or with force replaces only its own files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; export into a new or empty directory")
    _refuse_inside_run(out)
    there = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if there and not force:
        shown = ", ".join(there[:4]) + (", ..." if len(there) > 4 else "")
        raise UserError(f"{out} already holds files ({shown}); export into a new or empty "
                        f"directory, or pass --force to replace only the files export writes")
    blocked = [name for name in EXPORTED if os.path.lexists(out / name) and not (out / name).is_file()]
    if blocked:
        raise UserError(f"{out / blocked[0]} is not a regular file, so export cannot replace it; "
                        "move it away or choose another --out")


def export(run: str | Path, out_dir: str | Path, dtype: str = "fp32", card: str | Path | None = None,
           force: bool = False, format: str = "minigpt") -> Path:
    """`minigpt export`: a run directory -> a model directory with a summary and words.txt, or
    with format="transformers" a transformers directory (GPT-2 where the architecture is the
    seed's; hf.py).

    `out_dir` must be new or empty; with force=True it may hold files, and export replaces only
    those it writes (EXPORTED), keeping their permissions, and leaves every other file alone. A
    directory inside a training run is always refused."""
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype not in dtypes:
        raise UserError(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "transformers":
        from . import hf  # noqa: F401  (before anything is loaded: a missing package is one line)
    run = resolve(run)
    out = Path(out_dir)
    if out.resolve() == run.resolve():
        raise UserError(f"{out} already holds the model being exported; export to a new directory")
    _check_export_dir(out, force)  # before anything is loaded or written
    if card is not None and not Path(card).is_file():
        raise UserError(f"--card {card} is not a file; give the model card's markdown file")
    model, tokenizer, config = load(run, "cpu")
    config = {k: v for k, v in config.items() if k in ("train", "minigpt_version", "torch_version")}
    config["summary"] = run_summary(run)
    if format == "transformers":
        save_pretrained(model, tokenizer, out, dtype=dtypes[dtype], format=format)
    else:
        save_pretrained(model, tokenizer, out, config, dtypes[dtype], training_words(run, tokenizer))
    extra = {}
    if card:
        extra[CARD] = lambda p: atomic_write(p, lambda tmp: shutil.copyfile(card, tmp))
    records = read_metrics(run)  # the learning curves come along (the web page draws them)
    if records and format == "minigpt":
        extra[METRICS] = lambda p: atomic_write(p, lambda tmp: Path(tmp).write_text(
            metrics_text(records), encoding="utf-8"))
    _write_files(out, extra)
    return out


def run_summary(run: Path) -> dict:
    """Step and last held-out / train bits per character: an exported model's summary (its
    config.json's), else the last record of the run's metrics.jsonl."""
    config = read_json(run / CONFIG) if (run / CONFIG).is_file() else None
    if isinstance(config, dict) and isinstance(config.get("summary"), dict):
        return config["summary"]
    summary = {}
    if (run / METRICS).exists():
        # read_metrics skips torn lines; a record lacking a field (edited) is passed over too
        for last in reversed(read_metrics(run)):
            if "train_bpc" not in last and _number(last.get("train_nats")):  # older runs: char only
                last = dict(last, train_bpc=last["train_nats"] / math.log(2))
            if isinstance(last.get("step"), int) and all(_number(last.get(k)) for k in ("val_bpc", "train_bpc")):
                summary = {"step": last["step"], "held_out_bits_per_char": round(last["val_bpc"], 4),
                           "train_bits_per_char": round(last["train_bpc"], 4)}
                break
    return summary


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_words(run: Path, tokenizer: Tokenizer | None = None, max_tokens: int = 50_000_000) -> list[str]:
    """The distinct words (lower case) of a run's training text, or of a model's words.txt."""
    if (run / WORDS).exists():
        try:
            return regular_file(run / WORDS, "word list").read_text(encoding="utf-8").split()
        except UnicodeDecodeError:
            raise UserError(f"{run / WORDS} is not UTF-8 text; the model directory is damaged") from None
    if not (run / "data" / "train.bin").exists():
        return []
    tokenizer = tokenizer or load_tokenizer(run / TOKENIZER)
    # load_splits checks the prepared data (size, count, ids in range) before it is decoded
    ids = load_splits(run / "data", tokenizer).train[:max_tokens]
    words: set[str] = set()
    carry = ""  # a word cut by the chunk boundary waits for the rest of its letters
    for start in range(0, len(ids), 1 << 20):
        text = carry + tokenizer.decode(ids[start : start + (1 << 20)].tolist())
        cut = len(text.rstrip(string.ascii_letters))
        words.update(w.lower() for w in WORD.findall(text[:cut]))
        carry = text[cut:]
    words.update(w.lower() for w in WORD.findall(carry))
    words.discard("endoftext")  # the end-of-story marker's letters are not a story word
    if tokenizer.kind == "word":
        words.discard("unk")
    return sorted(words)
