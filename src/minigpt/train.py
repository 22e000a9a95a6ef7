"""The training loop: data -> model -> Muon/AdamW, warmup + cosine -> held-out eval -> checkpoints.

Each step draws batch_size random windows of block_size characters, asks the model to predict every
next character at once (teacher forcing: the true previous characters are always the input), and
takes one optimizer step (optim.py) on the cross-entropy loss. Every eval_interval steps it
measures held-out bits per character, prints a sample story, appends a line to metrics.jsonl and saves a checkpoint.
"""

from __future__ import annotations

import gc
import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import (CONFIG, check_run_dir, checkpoint_dirs, load_train_state, save_checkpoint,
                         tensor_digest)
from .config import ModelConfig, SampleConfig, TrainConfig, parse_duration
from .data import Splits, get_batch, load_splits, release_pages
from .device import pick_device, set_threads
from .distributed import (Dist, all_agree, gather_objects, restarted_by_torchrun, setup, step_sync,
                          teardown)
from .errors import UserError
from .evaluate import estimate_loss
from .generate import make_generator, stream
from .model import MiniGPT
from .optim import Muon
from .precision import attention_kernel, autocast, resolve_precision
from .rundir import RESUMABLE, check_disk_space, forget_after, resume_configs, start_run
from .tokenizer import load_tokenizer

# With no budget given: a few minutes on a laptop CPU, enough for words and simple sentences.
DEFAULT_STEPS = 2000

__all__ = ["DEFAULT_STEPS", "RESUMABLE", "Budget", "learning_rate", "make_optimizer", "train"]


def make_optimizer(model: MiniGPT, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or Muon for the blocks' matrices, optim.py) with weight decay on Linear weights only:
    decaying biases, LayerNorm gains or embeddings pulls them towards zero for no benefit."""
    hidden, decay, no_decay = [], [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            is_matrix = isinstance(module, torch.nn.Linear) and name == "weight"
            if is_matrix and module_name.startswith("blocks.") and cfg.optimizer == "muon":
                hidden.append(param)
            else:
                (decay if is_matrix else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))
    groups.append({"params": hidden, "weight_decay": cfg.weight_decay, "muon": True})
    # Newton-Schulz in bf16 where the model trains in bf16 (the CPU has fast bf16 products).
    ns_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    return Muon(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                momentum=cfg.muon_momentum, ns_dtype=ns_dtype)


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





def train(model_cfg: ModelConfig | None = None, cfg: TrainConfig | None = None,
          out_dir: str | Path = "runs/latest", resume: bool = False, log=print,
          interrupt_at_step: int | None = None) -> Path:
    """Train a model and return its run directory.

    resume=True continues the run in `out_dir`: weights, optimizer, step, RNG and data order pick
    up exactly where the last checkpoint left off; the budget options in `cfg` (epochs,
    max_steps, max_time, ...) replace the saved ones. `interrupt_at_step` stops as if Ctrl-C had
    been pressed after that step, which is how the tests check resume. Under torchrun every
    process calls this; see distributed.py.
    """
    out_dir = Path(out_dir)
    if not resume and restarted_by_torchrun() and (out_dir / CONFIG).exists():
        resume = True  # torchrun --max-restarts brought us back: continue, don't start over
    if resume:
        out_dir = check_run_dir(out_dir)
        model_cfg, cfg = resume_configs(out_dir, cfg)
    model_cfg = model_cfg or ModelConfig()
    cfg = cfg or TrainConfig()
    model_cfg.validate()
    cfg.validate()
    device = pick_device(cfg.device)
    d = setup(device.type)
    try:
        return _train(model_cfg, cfg, out_dir, resume, log, interrupt_at_step, device, d)
    finally:
        if d.enabled:
            # DDP's reducer must be gone before its process group: collected later (at exit),
            # it can abort the process ("terminate called without an active exception").
            gc.collect()
        teardown(d)


def _train(model_cfg, cfg, out_dir, resume, log, interrupt_at_step, device, d: Dist) -> Path:
    if d.enabled:
        if d.is_main:
            log(f"distributed: {d.world_size} processes, global batch {cfg.batch_size} = "
                f"{d.world_size} x {cfg.grad_accum} micro-batches of "
                f"{cfg.batch_size // max(1, d.world_size * cfg.grad_accum)}")
        else:
            log = _quiet  # only rank 0 speaks
        if device.type == "cuda":
            device = torch.device("cuda", d.local_rank)
    if cfg.batch_size % (d.world_size * cfg.grad_accum):
        raise UserError(f"batch_size {cfg.batch_size} must be divisible by processes "
                        f"({d.world_size}) x grad_accum ({cfg.grad_accum})")
    threads = set_threads(cfg.threads) if device.type == "cpu" else None
    # Resolved once and saved in config.json, so a resumed run computes exactly as it started.
    cfg.precision, why = resolve_precision(cfg.precision, device, model_cfg.n_embd)
    amp = autocast(cfg.precision, device)
    splits = _open_data(model_cfg, cfg, out_dir, resume, log, d)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = MiniGPT(model_cfg).to(device).prepare(attention_kernel(cfg.precision, device))
    optimizer = make_optimizer(model, cfg)
    batch_rng = torch.Generator().manual_seed(cfg.seed + 1)  # the same windows on every rank
    if d.enabled:
        torch.manual_seed(cfg.seed + 7919 * d.rank)  # but different dropout masks
    step, elapsed, best_val = 0, 0.0, float("inf")
    if resume and not checkpoint_dirs(out_dir):
        # Stopped before its first checkpoint: start again from step 0 with the same seed,
        # which is exactly what the uninterrupted run did.
        log("no checkpoint yet: starting the run again from step 0")
        if d.is_main:
            forget_after(out_dir, 0)
    elif resume:
        state, rng = load_train_state(out_dir, model, optimizer, log)
        step, elapsed, best_val = state["step"], state["elapsed_s"], state["best_val_nats"]
        torch.set_rng_state(rng.get(f"torch.{d.rank}", rng.get("torch")))
        batch_rng.set_state(rng["batches"])
        if d.is_main:
            forget_after(out_dir, step)  # log lines from steps the crash lost are replayed
    # The causal mask is the only buffer and never changes: no need to broadcast it every step.
    net = DistributedDataParallel(model, forward_sync_buffers=False) if d.enabled else model
    budget = Budget(cfg, len(splits.train), model_cfg.block_size)
    unit = "chars" if splits.tokenizer.kind == "char" else f"{splits.tokenizer.kind} tokens"
    log(f"model: {model.num_parameters():,} parameters | vocab {model_cfg.vocab_size} | "
        f"data: {len(splits.train):,} train / {len(splits.val):,} held-out {unit} | "
        f"device {device}{f' ({threads} threads)' if threads else ''} | "
        f"precision {cfg.precision} ({why}) | run {out_dir}")
    if resume:
        log(f"resuming at step {step}")
        if budget.done(step, elapsed):
            log("the run has already used its budget: pass a larger --max-steps, --epochs or "
                "--max-time to train further")

    stop = {"signal": None}
    handlers = _install_stop_handlers(stop)
    progress = Progress(budget) if d.is_main else None
    micro = cfg.batch_size // (d.world_size * cfg.grad_accum)
    chars_per_step = cfg.batch_size * model_cfg.block_size * splits.chars_per_token("train")
    interval_losses, interval_start, interval_steps = [], time.monotonic(), 0
    net.train()
    mark = time.monotonic()  # training time is measured from here, eval and checkpoints excluded
    try:
        while not budget.done(step, elapsed):
            lr = learning_rate(cfg, step, budget.progress(step, elapsed))
            for group in optimizer.param_groups:
                group["lr"] = lr
            # The global batch's windows, the same on every rank; this rank takes its share.
            x, y = get_batch(splits.train, cfg.batch_size, model_cfg.block_size, batch_rng, device)
            mine = slice(d.rank * micro * cfg.grad_accum, (d.rank + 1) * micro * cfg.grad_accum)
            x, y = x[mine], y[mine]
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for k in range(cfg.grad_accum):
                part = slice(k * micro, (k + 1) * micro)
                last = k == cfg.grad_accum - 1
                with net.no_sync() if d.enabled and not last else nullcontext():
                    with amp:  # bf16 matrix products when cfg.precision is bf16
                        _, loss, _ = net(x[part], y[part])
                    (loss / cfg.grad_accum).backward()  # gradients add up over micro-batches
                step_loss += loss.item() / cfg.grad_accum
            interrupted = bool(stop["signal"]) or (interrupt_at_step is not None
                                                   and step + 1 >= interrupt_at_step)
            step_loss, spent, interrupted = step_sync(d, step_loss, time.monotonic() - mark, interrupted)
            mark = time.monotonic()
            if not math.isfinite(step_loss):
                raise UserError(f"the loss became {step_loss} at step {step + 1}: training "
                                f"diverged; try a lower --learning-rate (the last checkpoint in "
                                f"{out_dir} is kept as it was)")
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            elapsed += spent
            if step % 10 == 0:  # keep resident memory independent of the corpus size
                release_pages(splits.train)
            interval_losses.append(step_loss)
            interval_steps += 1
            speed = interval_steps * chars_per_step / max(time.monotonic() - interval_start, 1e-9)
            if progress:
                progress.update(step, elapsed, step_loss, speed)
            if step % cfg.eval_interval == 0 or budget.done(step, elapsed) or interrupted:
                if progress:
                    progress.update(step, elapsed, step_loss, speed, force=True)
                    progress.close()
                rngs = gather_objects(d, torch.get_rng_state())
                digests = gather_objects(d, tensor_digest(model.state_dict()) if d.enabled else "")
                if len(set(digests)) > 1:
                    raise RuntimeError(f"ranks hold different weights at step {step}: {digests}")
                if d.is_main:
                    if d.enabled:
                        log(f"step {step}: all {d.world_size} ranks hold identical weights")
                    best_val = _evaluate_and_save(out_dir, model, optimizer, splits, cfg, log, rngs,
                                                  batch_rng, step, elapsed, best_val, lr,
                                                  sum(interval_losses) / len(interval_losses), speed)
                interval_losses, interval_start, interval_steps = [], time.monotonic(), 0
                mark = time.monotonic()
            if interrupted:
                log(f"stopped at step {step} ({stop['signal'] or 'interrupt requested'}); "
                    f"checkpoint saved, continue with --resume {out_dir}")
                break
    finally:
        if progress:
            progress.close()
        _restore_handlers(handlers)
    if d.is_main and cfg.plot_loss and (out_dir / "metrics.jsonl").exists():
        _draw_loss(out_dir, log)
    all_agree(d, True)  # leave together: no rank tears the group down while another still works
    return out_dir


def _quiet(*_args) -> None:
    pass


def _open_data(model_cfg, cfg, out_dir: Path, resume: bool, log, d: Dist) -> Splits:
    """Rank 0 creates (or checks) the run; the others wait, then open what it wrote."""
    if resume:
        if d.is_main:
            check_disk_space(out_dir, model_cfg, cfg)
        return load_splits(out_dir / "data", load_tokenizer(out_dir / "tokenizer.json"))
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
        splits = load_splits(out_dir / "data", load_tokenizer(out_dir / "tokenizer.json"))
        model_cfg.vocab_size = splits.tokenizer.vocab_size
    return splits


def _evaluate_and_save(out_dir, model, optimizer, splits, cfg, log, rngs, batch_rng, step, elapsed,
                       best_val, lr, train_nats, speed) -> float:
    """Held-out estimate, metrics line, sample story, checkpoint. Returns the new best loss."""
    val = estimate_loss(model, splits.val, cfg.eval_batches, cfg.batch_size, cfg.seed)
    release_pages(splits.val)
    is_best, best_val = val < best_val, min(best_val, val)
    # Losses are per token; bits per *character* of the text they stand for compare across tokenizers.
    train_cpt, val_cpt = splits.chars_per_token("train"), splits.chars_per_token("val")
    record = {"step": step, "train_nats": train_nats, "val_nats": val,
              "train_bpc": train_nats / train_cpt / math.log(2), "val_bpc": val / val_cpt / math.log(2),
              "chars_per_token": val_cpt, "lr": lr, "chars_per_s": speed, "elapsed_s": elapsed}
    _log_eval(out_dir, record, model, splits, cfg, log)
    rng = {"torch": rngs[0].clone(), "batches": batch_rng.get_state()}
    rng.update({f"torch.{rank}": state for rank, state in enumerate(rngs)} if len(rngs) > 1 else {})
    save_checkpoint(out_dir, model, optimizer, {
        "step": step, "elapsed_s": elapsed, "best_val_nats": best_val, "val_nats": val,
        "world_size": len(rngs)}, rng, keep=cfg.keep_checkpoints, is_best=is_best)
    return best_val


def _draw_loss(out_dir: Path, log) -> None:
    try:
        from .viz import plot_loss
        log(f"loss curves: {plot_loss([out_dir], out_dir / 'loss.png')}")
    except UserError as exc:  # matplotlib missing: the run itself is fine
        log(f"no loss.png: {exc}")


def _log_eval(out_dir: Path, record: dict, model: MiniGPT, splits: Splits, cfg: TrainConfig, log):
    """Print and store held-out loss and a sample story."""
    unit = "char" if splits.tokenizer.kind == "char" else "token"
    log(f"step {record['step']}: train {record['train_nats']:.3f} nats/{unit} | held-out "
        f"{record['val_nats']:.3f} nats/{unit} = {record['val_bpc']:.3f} bits/char")
    with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if cfg.sample_chars:
        sample_cfg = SampleConfig(max_new_tokens=None, max_new_chars=cfg.sample_chars, temperature=0.8)
        story = "".join(stream(model, splits.tokenizer, "", sample_cfg,
                               make_generator(cfg.seed, next(model.parameters()).device)))
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
