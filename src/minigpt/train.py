"""The training loop: data -> model -> AdamW with warmup + cosine -> held-out eval -> checkpoints.

Each step draws batch_size random windows of block_size characters, asks the model to predict every
next character at once (teacher forcing: the true previous characters are always the input), and
takes one AdamW step on the cross-entropy loss. Every eval_interval steps it measures held-out
bits per character, prints a sample story, appends a line to metrics.jsonl and saves a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from .checkpoint import (CONFIG, check_run_dir, checkpoint_dirs, load_train_state, read_json,
                         save_checkpoint, save_run_config)
from .config import ModelConfig, SampleConfig, TrainConfig, from_dict, parse_duration
from .data import Splits, check_length, get_batch, load_splits, prepare_data
from .device import pick_device, set_threads
from .errors import UserError
from .evaluate import estimate_loss
from .generate import generate_ids, make_generator
from .model import MiniGPT
from .tokenizer import load_tokenizer

# With no budget given: a few minutes on a laptop CPU, enough for words and simple sentences.
DEFAULT_STEPS = 2000

# Budget options that may change when a run is resumed; everything else comes from the run.
RESUMABLE = ("epochs", "max_steps", "max_time", "eval_interval", "eval_batches", "sample_chars",
             "keep_checkpoints", "plot_loss", "device", "threads")


def make_optimizer(model: MiniGPT, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on Linear weights only: decaying biases, LayerNorm gains or
    embeddings pulls them towards zero for no benefit."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            is_matrix = isinstance(module, torch.nn.Linear) and name == "weight"
            (decay if is_matrix else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over warmup_steps, then cosine from the peak down to min_lr_ratio * peak.

    `progress` (0..1) is how much of the budget is used: steps, epochs or wall-clock time.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    low = cfg.learning_rate * cfg.min_lr_ratio
    return low + (cfg.learning_rate - low) * cosine


class Budget:
    """When to stop: after max_steps, after `epochs` passes over the data, or after max_time;
    with several, whichever comes first; with none, after DEFAULT_STEPS steps."""

    def __init__(self, cfg: TrainConfig, train_tokens: int, block_size: int):
        self.steps_per_epoch = max(1, train_tokens // (cfg.batch_size * block_size))
        limits = [math.ceil(cfg.epochs * self.steps_per_epoch)] if cfg.epochs else []
        limits += [cfg.max_steps] if cfg.max_steps else []
        if not limits and cfg.max_time is None:
            limits = [DEFAULT_STEPS]  # nothing asked: a fixed step count keeps --seed reproducible
        self.max_steps = min(limits) if limits else None
        self.max_time = parse_duration(cfg.max_time) if cfg.max_time else None

    def progress(self, step: int, elapsed: float) -> float:
        parts = [step / self.max_steps] if self.max_steps else []
        parts += [elapsed / self.max_time] if self.max_time else []
        return max(parts)

    def done(self, step: int, elapsed: float) -> bool:
        return self.progress(step, elapsed) >= 1.0


class Progress:
    """One status line on stderr: rewritten in place on a terminal, every 30 s in a log file."""

    def __init__(self, budget: Budget):
        self.budget, self.tty = budget, sys.stderr.isatty()
        self.last = 0.0

    def update(self, step: int, elapsed: float, loss: float, chars_per_s: float, force=False):
        now = time.monotonic()
        if not force and now - self.last < (0.5 if self.tty else 30.0):
            return
        self.last = now
        done = self.budget.progress(step, elapsed)
        eta = elapsed * (1 - done) / done if done > 0 else 0.0
        total = f"/{self.budget.max_steps}" if self.budget.max_steps else ""
        line = (f"step {step}{total} {done:4.0%} | loss {loss:.3f} | "
                f"{chars_per_s / 1000:.1f}k chars/s | {_clock(elapsed)} elapsed, ETA {_clock(eta)}")
        print(("\r" + line.ljust(100)) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def close(self):
        if self.tty:
            print(file=sys.stderr)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _prepare_run(out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, log) -> Splits:
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
    save_run_config(out_dir, model_cfg, dataclasses.asdict(cfg))
    return splits


def saved_train_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run was started with (from its config.json)."""
    saved = read_json(check_run_dir(run_dir) / CONFIG)
    return from_dict(TrainConfig, saved.get("train", {}), f"{run_dir}/{CONFIG} train")


def _check_disk_space(out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """Refuse to start when the checkpoints we will keep cannot fit on the disk."""
    with torch.device("meta"):  # count parameters without allocating them
        weights = 4 * MiniGPT(model_cfg).num_parameters()
    # Each checkpoint holds the weights and AdamW's two moments; keep + best + one being written,
    # plus the top-level weights; doubled for headroom.
    needed = 2 * (3 * weights * (cfg.keep_checkpoints + 2) + weights)
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        raise UserError(f"only {free / 1e6:.1f} MB free on the disk of {out_dir}; the checkpoints "
                        f"need about {needed / 1e6:.1f} MB: free some space or choose another --out")


def _forget_after(out_dir: Path, step: int) -> None:
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


def _discard_new_run(out_dir: Path, created: bool) -> None:
    """Remove what a run that failed before its first step wrote (never an existing run: a
    directory holding config.json was refused before anything was written)."""
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    shutil.rmtree(out_dir / "data", ignore_errors=True)
    for name in (CONFIG, "tokenizer.json"):
        (out_dir / name).unlink(missing_ok=True)


def _resume_configs(run_dir: Path, overrides: TrainConfig | None) -> tuple[ModelConfig, TrainConfig]:
    saved = read_json(run_dir / CONFIG)
    model_cfg = from_dict(ModelConfig, saved["model"], f"{run_dir}/{CONFIG} model")
    cfg = saved_train_config(run_dir)
    if overrides is not None:
        cfg = dataclasses.replace(cfg, **{k: getattr(overrides, k) for k in RESUMABLE})
    return model_cfg, cfg


def train(model_cfg: ModelConfig | None = None, cfg: TrainConfig | None = None,
          out_dir: str | Path = "runs/latest", resume: bool = False, log=print,
          interrupt_at_step: int | None = None) -> Path:
    """Train a model and return its run directory.

    resume=True continues the run in `out_dir`: weights, optimizer, step, RNG and data order pick
    up exactly where the last checkpoint left off; the budget options in `cfg` (epochs,
    max_steps, max_time, ...) replace the saved ones. `interrupt_at_step` stops as if Ctrl-C had
    been pressed after that step, which is how the tests check resume.
    """
    out_dir = Path(out_dir)
    if resume:
        out_dir = check_run_dir(out_dir)
        model_cfg, cfg = _resume_configs(out_dir, cfg)
    model_cfg = model_cfg or ModelConfig()
    cfg = cfg or TrainConfig()
    model_cfg.validate()
    cfg.validate()
    device = pick_device(cfg.device)
    threads = set_threads(cfg.threads) if device.type == "cpu" else None
    if resume:
        splits = load_splits(out_dir / "data", load_tokenizer(out_dir / "tokenizer.json"))
        _check_disk_space(out_dir, model_cfg, cfg)
    else:
        if (out_dir / CONFIG).exists():
            raise UserError(f"{out_dir} already holds a run: continue it with --resume {out_dir}, "
                            "or choose another --out")
        created = not out_dir.exists()
        try:
            splits = _prepare_run(out_dir, model_cfg, cfg, log)
            check_length(splits.train, model_cfg.block_size, "training")
            check_length(splits.val, model_cfg.block_size, "held-out")
            _check_disk_space(out_dir, model_cfg, cfg)
        except BaseException:
            _discard_new_run(out_dir, created)  # a failed start leaves nothing behind
            raise

    torch.manual_seed(cfg.seed)
    model = MiniGPT(model_cfg).to(device)
    optimizer = make_optimizer(model, cfg)
    batch_rng = torch.Generator().manual_seed(cfg.seed + 1)
    step, elapsed, best_val = 0, 0.0, float("inf")
    if resume and not checkpoint_dirs(out_dir):
        # Stopped before its first checkpoint: start again from step 0 with the same seed,
        # which is exactly what the uninterrupted run did.
        log("no checkpoint yet: starting the run again from step 0")
        _forget_after(out_dir, 0)
    elif resume:
        state, rng = load_train_state(out_dir, model, optimizer, log)
        step, elapsed, best_val = state["step"], state["elapsed_s"], state["best_val_nats"]
        torch.set_rng_state(rng["torch"])
        batch_rng.set_state(rng["batches"])
        _forget_after(out_dir, step)  # log lines from steps the crash lost are replayed
    budget = Budget(cfg, len(splits.train), model_cfg.block_size)
    log(f"model: {model.num_parameters():,} parameters | vocab {model_cfg.vocab_size} | "
        f"data: {len(splits.train):,} train / {len(splits.val):,} held-out chars | "
        f"device {device}{f' ({threads} threads)' if threads else ''} | run {out_dir}")
    if resume:
        log(f"resuming at step {step}")
        if budget.done(step, elapsed):
            log("the run has already used its budget: pass a larger --max-steps, --epochs or "
                "--max-time to train further")

    stop = {"signal": None}
    handlers = _install_stop_handlers(stop)
    progress = Progress(budget)
    chars_per_step = cfg.batch_size * model_cfg.block_size
    interval_losses, interval_start, interval_steps = [], time.monotonic(), 0
    model.train()
    try:
        while not budget.done(step, elapsed):
            t0 = time.monotonic()
            lr = learning_rate(cfg, step, budget.progress(step, elapsed))
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = get_batch(splits.train, cfg.batch_size, model_cfg.block_size, batch_rng, device)
            _, loss, _ = model(x, y)
            if not torch.isfinite(loss):
                raise UserError(f"the loss became {loss.item()} at step {step + 1}: training "
                                f"diverged; try a lower --learning-rate (the last checkpoint in "
                                f"{out_dir} is kept as it was)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            elapsed += time.monotonic() - t0
            interval_losses.append(loss.item())
            interval_steps += 1
            speed = interval_steps * chars_per_step / max(time.monotonic() - interval_start, 1e-9)
            progress.update(step, elapsed, interval_losses[-1], speed)
            interrupted = stop["signal"] or (interrupt_at_step is not None and step >= interrupt_at_step)
            if step % cfg.eval_interval == 0 or budget.done(step, elapsed) or interrupted:
                progress.update(step, elapsed, interval_losses[-1], speed, force=True)
                progress.close()
                val = estimate_loss(model, splits.val, cfg.eval_batches, cfg.batch_size, cfg.seed)
                is_best, best_val = val < best_val, min(best_val, val)
                record = {"step": step, "train_nats": sum(interval_losses) / len(interval_losses),
                          "val_nats": val, "val_bpc": val / math.log(2), "lr": lr,
                          "chars_per_s": speed, "elapsed_s": elapsed}
                _log_eval(out_dir, record, model, splits, cfg, log)
                rng = {"torch": torch.get_rng_state(), "batches": batch_rng.get_state()}
                save_checkpoint(out_dir, model, optimizer, {
                    "step": step, "elapsed_s": elapsed, "best_val_nats": best_val,
                    "val_nats": val}, rng, keep=cfg.keep_checkpoints, is_best=is_best)
                interval_losses, interval_start, interval_steps = [], time.monotonic(), 0
            if interrupted:
                log(f"stopped at step {step} ({stop['signal'] or 'interrupt requested'}); "
                    f"checkpoint saved, continue with --resume {out_dir}")
                break
    finally:
        progress.close()
        _restore_handlers(handlers)
    if cfg.plot_loss and (out_dir / "metrics.jsonl").exists():
        _draw_loss(out_dir, log)
    return out_dir


def _draw_loss(out_dir: Path, log) -> None:
    try:
        from .viz import plot_loss
        log(f"loss curves: {plot_loss([out_dir], out_dir / 'loss.png')}")
    except UserError as exc:  # matplotlib missing: the run itself is fine
        log(f"no loss.png: {exc}")


def _log_eval(out_dir: Path, record: dict, model: MiniGPT, splits: Splits, cfg: TrainConfig, log):
    """Print and store held-out loss and a sample story."""
    log(f"step {record['step']}: train {record['train_nats']:.3f} nats/char | held-out "
        f"{record['val_nats']:.3f} nats/char = {record['val_bpc']:.3f} bits/char")
    with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if cfg.sample_chars:
        sample_cfg = SampleConfig(max_new_tokens=cfg.sample_chars, temperature=0.8)
        tok = splits.tokenizer
        ids = generate_ids(model, [tok.eos_id], sample_cfg, tok.eos_id,
                           make_generator(cfg.seed, next(model.parameters()).device))
        story = tok.decode(list(ids))
        log(f"sample: {story}")
        with open(out_dir / "samples.txt", "a", encoding="utf-8") as f:
            f.write(f"--- step {record['step']}\n{story}\n")


def _install_stop_handlers(stop: dict) -> dict:
    """Ctrl-C / SIGTERM finish the current step, save a checkpoint and stop cleanly."""
    def handler(signum, _frame):
        stop["signal"] = signal.Signals(signum).name
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
