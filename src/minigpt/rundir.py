"""Starting and resuming a run directory: the checks and tidying around the training loop.

A new run refuses a directory that already holds one, checks it can write there and that the disk
can hold its checkpoints, prepares the data, and if anything fails before the first step removes
what it created. A resumed run takes its settings from config.json (config.resolve: only the
budget-like options in RESUMABLE may change), and continues from its newest good checkpoint,
forgetting the log lines of steps a crash lost, since they are trained again. Under torchrun
rank 0 prepares a new run while the others wait (open_run).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import torch

from .checkpoint import CONFIG, TOKENIZER, checkpoint_dirs, load_train_state, save_run_config
from .config import ModelConfig, TrainConfig
from .data import Splits, check_length, load_splits, prepare_data
from .distributed import Dist, all_agree
from .errors import UserError
from .model import MiniGPT
from .runlog import forget_after
from .tokenizer import load_tokenizer


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
        splits.tokenizer.save(out_dir / TOKENIZER)
        model_cfg = dataclasses.replace(model_cfg, vocab_size=splits.tokenizer.vocab_size)
        check_length(splits.train, model_cfg.block_size, "training")
        check_length(splits.val, model_cfg.block_size, "held-out")
        check_disk_space(out_dir, model_cfg, cfg)
        # Written last: its presence is what marks the directory as a run.
        save_run_config(out_dir, model_cfg, dataclasses.asdict(cfg), splits.tokenizer.kind)
    except BaseException:
        _discard_new_run(out_dir, created)
        raise
    return splits


def open_run(out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, resume: bool, log,
             d: Dist) -> Splits:
    """The run's data. A new run: rank 0 creates it (start_run) while the others wait, then they
    open what it wrote. A resumed run: every rank opens the data already there."""
    if resume:
        if d.is_main:
            check_disk_space(out_dir, model_cfg, cfg)
        return load_splits(out_dir / "data", load_tokenizer(out_dir / TOKENIZER))
    splits, error = None, None
    if d.is_main:
        try:
            splits = start_run(out_dir, model_cfg, cfg, log)
        except BaseException as exc:
            error = exc
    if not all_agree(d, error is None):
        if error is not None:
            raise error
        raise UserError("rank 0 could not start the run (see its message)")
    if splits is None:
        splits = load_splits(out_dir / "data", load_tokenizer(out_dir / TOKENIZER))
    return splits


def restore_checkpoint(out_dir: Path, model: MiniGPT, optimizer: torch.optim.Optimizer,
                       batch_rng: torch.Generator, log, d: Dist) -> dict:
    """Load the newest good checkpoint into the model, the optimizer and the random generators,
    and forget what was logged after its step. Returns its state (step, elapsed_s, best_val_nats)."""
    if not checkpoint_dirs(out_dir):
        # Stopped before its first checkpoint: start again from step 0 with the same seed,
        # which is exactly what the uninterrupted run did.
        log("no checkpoint yet: starting the run again from step 0")
        if d.is_main:
            forget_after(out_dir, 0)
        return {"step": 0, "elapsed_s": 0.0, "best_val_nats": math.inf}
    state, rng = load_train_state(out_dir, model, optimizer, log)
    torch.set_rng_state(rng.get(f"torch.{d.rank}", rng.get("torch")))  # this rank's dropout
    batch_rng.set_state(rng["batches"])
    if d.is_main:
        forget_after(out_dir, state["step"])  # log lines from steps the crash lost are replayed
    return state


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
    for name in (CONFIG, TOKENIZER):
        (out_dir / name).unlink(missing_ok=True)
