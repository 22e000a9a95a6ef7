"""Starting and resuming a run directory: the checks and tidying around the training loop.

A new run refuses a directory that already holds one, checks it can write there and that the disk
can hold its checkpoints, prepares the data, and if anything fails before the first step removes
what it created. A resumed run takes its settings from config.json (only the budget-like options
in RESUMABLE may change) and forgets log lines from steps a crash lost, since they are replayed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import torch

from .checkpoint import CONFIG, check_run_dir, read_json, save_run_config
from .config import ModelConfig, TrainConfig, from_dict
from .data import Splits, check_length, prepare_data
from .errors import UserError
from .model import MiniGPT

# Options that may change when a run is resumed; everything else comes from the run.
RESUMABLE = ("epochs", "max_steps", "max_time", "eval_interval", "eval_batches", "sample_chars",
             "keep_checkpoints", "plot_loss", "device", "threads")


def start_run(out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, log) -> Splits:
    """Create a new run in `out_dir` and prepare its data; on failure leave nothing behind."""
    if (out_dir / CONFIG).exists():
        raise UserError(f"{out_dir} already holds a run: continue it with --resume {out_dir}, "
                        "or choose another --out")
    created = not out_dir.exists()
    try:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            probe = out_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to run directory {out_dir}: {exc.strerror}") from None
        splits = prepare_data(cfg, out_dir / "data", log)
        splits.tokenizer.save(out_dir / "tokenizer.json")
        model_cfg.vocab_size = splits.tokenizer.vocab_size
        check_length(splits.train, model_cfg.block_size, "training")
        check_length(splits.val, model_cfg.block_size, "held-out")
        check_disk_space(out_dir, model_cfg, cfg)
        # Written last: its presence is what marks the directory as a run.
        save_run_config(out_dir, model_cfg, dataclasses.asdict(cfg), splits.tokenizer.kind)
    except BaseException:
        _discard_new_run(out_dir, created)
        raise
    return splits


def check_disk_space(out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """Refuse to start when the checkpoints we will keep cannot fit on the disk."""
    with torch.device("meta"):  # count parameters without allocating them
        weights = 4 * MiniGPT(model_cfg).num_parameters()
    # Each checkpoint holds the weights and at most two optimizer tensors per weight (AdamW's
    # moments; Muon keeps one); keep + best + one being written,
    # plus the top-level weights; doubled for headroom.
    needed = 2 * (3 * weights * (cfg.keep_checkpoints + 2) + weights)
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        raise UserError(f"only {free / 1e6:.1f} MB free on the disk of {out_dir}; the checkpoints "
                        f"need about {needed / 1e6:.1f} MB: free some space or choose another --out")


def _discard_new_run(out_dir: Path, created: bool) -> None:
    """Remove what a run that failed before its first step wrote (never an existing run: a
    directory holding config.json was refused before anything was written)."""
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    shutil.rmtree(out_dir / "data", ignore_errors=True)
    for name in (CONFIG, "tokenizer.json"):
        (out_dir / name).unlink(missing_ok=True)


def saved_train_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run was started with (from its config.json)."""
    saved = read_json(check_run_dir(run_dir) / CONFIG).get("train", {})
    # Runs from before the optimizer could be chosen all trained with AdamW.
    saved.setdefault("optimizer", "adamw")
    return from_dict(TrainConfig, saved, f"{run_dir}/{CONFIG} train")


def resume_configs(run_dir: Path, overrides: TrainConfig | None) -> tuple[ModelConfig, TrainConfig]:
    """The run's saved configs, with the RESUMABLE fields taken from `overrides`."""
    saved = read_json(run_dir / CONFIG)
    model_cfg = from_dict(ModelConfig, saved["model"], f"{run_dir}/{CONFIG} model")
    cfg = saved_train_config(run_dir)
    if overrides is not None:
        cfg = dataclasses.replace(cfg, **{k: getattr(overrides, k) for k in RESUMABLE})
    return model_cfg, cfg


def forget_after(out_dir: Path, step: int) -> None:
    """Drop metrics and samples logged after `step` (they will be logged again)."""
    metrics = out_dir / "metrics.jsonl"
    if metrics.exists():
        kept = [line for line in metrics.read_text(encoding="utf-8").splitlines()
                if line.strip() and _step_of(line) <= step]
        metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    samples = out_dir / "samples.txt"
    if samples.exists():
        kept, keeping = [], True
        for line in samples.read_text(encoding="utf-8").splitlines(keepends=True):
            header = re.fullmatch(r"--- step (\d+)\s*", line)
            if header:
                keeping = int(header.group(1)) <= step
            if keeping:
                kept.append(line)
        samples.write_text("".join(kept), encoding="utf-8")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # a torn last line from a crash: drop it
