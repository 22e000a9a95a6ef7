"""Starting and resuming a run directory: the checks and tidying around the training loop.

A run directory is owned: the training run that writes it holds a lock on it (`.lock`, through
the filelock library, so the operating system releases it however the process ends) for its
whole life, and a second training run into the same directory is refused before it changes
anything. Under torchrun only rank 0 writes the run, so rank 0 alone holds the lock (claim_run).

A new run refuses a directory that already holds a run or any file a run writes, checks it can
write there and that the disk can hold its checkpoints, and prepares the data. It records
everything it creates, so that a start that fails before the first step removes exactly that and
nothing that was there before. A resumed run takes its settings from config.json
(config.resolve: only the budget-like options in RESUMABLE may change), and continues from its
newest good checkpoint, forgetting the log lines of steps a crash lost, since they are trained
again. Under torchrun rank 0 prepares a new run while the others wait (open_run).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from .checkpoint import checkpoint_dirs, load_train_state, save_run_config
from .config import ModelConfig, TrainConfig
from .data import Splits, check_length, load_splits, prepare_data
from .distributed import Dist, all_agree
from .errors import UserError
from .model import MiniGPT
from .runfiles import CHECKPOINTS, CONFIG, DATA, LOCK, TOKENIZER, WEIGHTS
from .runlog import METRICS, SAMPLES, forget_after
from .tokenizer import load_tokenizer

# What a run writes at its top level. A new run refuses a directory holding any of them: it would
# overwrite them, and a failed start could not tell the user's files from its own.
RUN_NAMES = (CONFIG, TOKENIZER, WEIGHTS, CHECKPOINTS, METRICS, SAMPLES, "loss.png", DATA)


@dataclasses.dataclass
class Claim:
    """The run directory this process trains in: its lock (held by rank 0 only) and, for a new
    run, the paths this run created, oldest first: all that a failed start may remove."""
    out_dir: Path
    lock: FileLock | None = None
    created: list[Path] = dataclasses.field(default_factory=list)
    started: bool = False  # config.json written: from now on the directory is a run and is kept


@contextmanager
def claim_run(out_dir: Path, resume: bool, d: Dist) -> Iterator[Claim]:
    """Own `out_dir` for the life of the `with` block: rank 0 takes the lock (creating the
    directory of a new run first); a new run that fails before it is started is removed, down to
    exactly what it created."""
    claim, error = Claim(out_dir), None
    if d.is_main:
        try:
            if not resume:
                _refuse_if_in_use(out_dir)  # a run still starting there has written some files
                _check_new_run_dir(out_dir)  # before touching anything
                _make_dirs(out_dir, claim.created)
            claim.lock = _lock(out_dir, claim.created)
        except BaseException as exc:
            error = exc
            if not isinstance(exc, InUse):  # in use: what we made is the other run's now
                _discard_new_run(claim)
    if not all_agree(d, error is None):
        if error is not None:
            raise error
        raise UserError("rank 0 could not take the run directory (see its message)")
    try:
        yield claim
    except BaseException:
        if d.is_main and not resume and not claim.started:
            _discard_new_run(claim)
        raise
    finally:
        if claim.lock is not None:
            claim.lock.release()


def start_run(claim: Claim, model_cfg: ModelConfig, cfg: TrainConfig, log) -> Splits:
    """Create a new run in the claimed directory and prepare its data. Each path is recorded in
    claim.created before it is made, so a failure at any point can remove it (claim_run)."""
    out_dir = claim.out_dir
    _check_new_run_dir(out_dir)  # again, under the lock: another run may have finished here since
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)  # a name nobody else uses
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {out_dir}: {exc.strerror}") from None
    claim.created.append(out_dir / DATA)
    splits = prepare_data(cfg, out_dir / DATA, log)
    claim.created.append(out_dir / TOKENIZER)
    splits.tokenizer.save(out_dir / TOKENIZER)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=splits.tokenizer.vocab_size)
    check_length(splits.train, model_cfg.block_size, "training")
    check_length(splits.val, model_cfg.block_size, "held-out")
    check_disk_space(out_dir, model_cfg, cfg)
    # Written last: its presence is what marks the directory as a run.
    claim.created.append(out_dir / CONFIG)
    save_run_config(out_dir, model_cfg, dataclasses.asdict(cfg), splits.tokenizer.kind)
    claim.started = True
    return splits


def open_run(claim: Claim, model_cfg: ModelConfig, cfg: TrainConfig, resume: bool, log,
             d: Dist) -> Splits:
    """The run's data. A new run: rank 0 creates it (start_run) while the others wait, then they
    open what it wrote. A resumed run: every rank opens the data already there."""
    out_dir = claim.out_dir
    if resume:
        if d.is_main:
            check_disk_space(out_dir, model_cfg, cfg)
        return load_splits(out_dir / DATA, load_tokenizer(out_dir / TOKENIZER))
    splits, error = None, None
    if d.is_main:
        try:
            splits = start_run(claim, model_cfg, cfg, log)
        except BaseException as exc:
            error = exc
    if not all_agree(d, error is None):
        if error is not None:
            raise error
        raise UserError("rank 0 could not start the run (see its message)")
    if splits is None:
        splits = load_splits(out_dir / DATA, load_tokenizer(out_dir / TOKENIZER))
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


def _check_new_run_dir(out_dir: Path) -> None:
    """A new run goes into a new directory, or one holding none of the names a run writes."""
    if (out_dir / CONFIG).exists():
        raise UserError(f"{out_dir} already holds a run: continue it with --resume {out_dir}, "
                        "or choose another --out")
    taken = [name for name in RUN_NAMES if os.path.lexists(out_dir / name)]
    if taken:
        shown = ", ".join(name + "/" * (out_dir / name).is_dir() for name in taken)
        raise UserError(f"{out_dir} already holds {shown}, which a new run would write: move "
                        f"{'them' if len(taken) > 1 else 'it'} away or choose another --out")


def _make_dirs(out_dir: Path, created: list[Path]) -> None:
    """mkdir -p, recording each directory it is about to make, outermost first."""
    created += [p for p in (out_dir, *out_dir.parents) if not p.exists()][::-1]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {out_dir}: {exc.strerror}") from None


class InUse(UserError):
    """Another training run holds the run directory's lock."""

    @classmethod
    def of(cls, out_dir: Path) -> InUse:
        return cls(f"{out_dir} is in use by another training run ({_holder(out_dir / LOCK)}): "
                   "wait for it to finish, or train into another --out")


def _lock(out_dir: Path, created: list[Path]) -> FileLock:
    """Take the run directory's lock without waiting, and note our pid in it for whoever is
    refused next. A lock file this run made is recorded in `created`."""
    path = out_dir / LOCK
    existed = os.path.lexists(path)
    lock = FileLock(path, timeout=0, on_acquired=_write_pid)
    try:
        lock.acquire()
    except Timeout:
        raise InUse.of(out_dir) from None
    except OSError as exc:
        raise UserError(f"cannot lock run directory {out_dir}: {exc.strerror or exc}") from None
    if not existed:
        created.append(path)
    return lock


def _refuse_if_in_use(out_dir: Path) -> None:
    """Raise InUse if another run holds the directory; only looks (creates and writes nothing)."""
    path = out_dir / LOCK
    if not path.is_file():
        return
    probe = FileLock(path, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        raise InUse.of(out_dir) from None
    except OSError:
        return  # not ours to judge here: taking the lock for real reports it
    probe.release()


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _holder(path: Path) -> str:
    with suppress(OSError, ValueError):
        return f"pid {int(path.read_text())}"
    return "pid unknown"  # it has only just taken the lock


def _discard_new_run(claim: Claim) -> None:
    """Remove what this run created, newest first, and nothing else: data/ is all ours (a
    directory that had one was refused); a directory we made is removed only once empty."""
    for path in reversed(claim.created):
        with suppress(OSError):
            if path == claim.out_dir / DATA:
                shutil.rmtree(path)
            elif path.is_dir() and not path.is_symlink():
                path.rmdir()  # fails, and is kept, if anything else is in it
            else:
                path.unlink(missing_ok=True)
    claim.created = []
