"""The training loop: data -> model -> Muon/AdamW, warmup + decay -> held-out eval -> checkpoints.

Each step draws batch_size random windows of block_size characters, asks the model to predict every
next character at once (teacher forcing: the true previous characters are always the input), and
takes one optimizer step (optim.py) on the cross-entropy loss. Every eval_interval steps it
measures held-out bits per character, prints a sample story, appends a line to metrics.jsonl
(runlog.py) and saves a checkpoint. `_train` below reads in that order; each part is a call.
"""

from __future__ import annotations

import gc
import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import save_checkpoint
from .config import (RESUMABLE, ModelConfig, SampleConfig, TrainConfig, check_training,
                     given_fields, parse_duration, resolve, saved_configs)
from .data import Splits, get_batch, release_pages
from .device import pick_device, set_threads
from .distributed import (Dist, all_agree, check_replicas_agree, gather_objects, restarted_by_torchrun,
                          setup, share_of_batch, step_sync, teardown, this_process)
from .errors import UserError
from .evaluate import estimate_loss
from .generate import make_generator, stream
from .model import MiniGPT
from .optim import learning_rate, make_optimizer
from .precision import attention_kernel, autocast, resolve_precision
from .rundir import claim_run, open_run, restore_checkpoint
from .runfiles import CONFIG, check_run_dir
from .runlog import METRICS, Progress, append_metrics, append_sample, tensorboard
from .viz import draw_run_loss

# With no budget given: a few minutes on a laptop CPU, enough for words and simple sentences.
DEFAULT_STEPS = 2000

__all__ = ["DEFAULT_STEPS", "RESUMABLE", "Budget", "learning_rate", "make_optimizer", "train"]


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


@dataclass
class Run:
    """The pieces of one run that every part of the loop uses; fixed once training starts."""
    cfg: TrainConfig  # with the precision resolved (fp32 or bf16, never auto)
    out_dir: Path
    splits: Splits
    model: MiniGPT
    net: torch.nn.Module  # the model, or under torchrun its DDP wrapper that averages gradients
    optimizer: torch.optim.Optimizer
    batch_rng: torch.Generator  # draws each batch's windows; checkpointed, so resume draws the same
    d: Dist
    log: Callable[[str], None]


@dataclass
class LoopState:
    """Where the loop stands. step, elapsed and best_val go into every checkpoint."""
    step: int = 0
    elapsed: float = 0.0  # seconds spent training; evaluations and checkpoints do not count
    best_val: float = math.inf  # the lowest held-out loss so far: its checkpoint is kept as best
    lr: float = 0.0  # the learning rate of the latest step
    # Since the last evaluation: every step's loss, and when the interval began (for the speed).
    losses: list[float] = field(default_factory=list)
    interval_start: float = field(default_factory=time.monotonic)

    def new_interval(self) -> None:
        self.losses, self.interval_start = [], time.monotonic()


def train(model_cfg: ModelConfig | None = None, cfg: TrainConfig | None = None,
          out_dir: str | Path = "runs/latest", resume: bool = False, log=print,
          interrupt_at_step: int | None = None) -> Path:
    """Train a model and return its run directory.

    resume=True continues the run in `out_dir`: weights, optimizer, step, RNG and data order pick
    up exactly where the last checkpoint left off. The rules are config.resolve's, as for
    `minigpt train --resume`: only the RESUMABLE fields of `cfg` may differ from the saved run,
    and a new budget (epochs, max_steps, max_time) replaces the saved one. `interrupt_at_step` stops as if Ctrl-C had
    been pressed after that step, which is how the tests check resume. Under torchrun every
    process calls this; see distributed.py.
    """
    out_dir, given = Path(out_dir), (model_cfg, cfg)
    if resume:
        out_dir, model_cfg, cfg = _resumed(out_dir, model_cfg, cfg)
    model_cfg = model_cfg or ModelConfig()
    cfg = cfg or TrainConfig()
    model_cfg.validate()
    cfg.validate()
    check_training(model_cfg, cfg)  # the memory this model and batch need, before allocating
    device = pick_device(cfg.device)
    d = setup(device.type)
    try:
        # torchrun --max-restarts brought us back: continue, don't start over. Decided after
        # joining the group, by all ranks together (distributed.restarted_by_torchrun); the
        # device is the first attempt's, chosen from the same command line.
        if not resume and restarted_by_torchrun(d) and (out_dir / CONFIG).exists():
            resume = True
            out_dir, model_cfg, cfg = _resumed(out_dir, *given)
        # Rank 0 holds the run directory's lock until training ends: a second run there is refused.
        with claim_run(out_dir, resume, d) as claim:
            return _train(model_cfg, cfg, claim, resume, log, interrupt_at_step, device, d)
    finally:
        if d.enabled:
            # DDP's reducer must be gone before its process group: collected later (at exit),
            # it can abort the process ("terminate called without an active exception").
            gc.collect()
        teardown(d)


def _resumed(out_dir: Path, model_cfg, cfg) -> tuple[Path, ModelConfig, TrainConfig]:
    """The run to continue and its configs: the one resume rule (config.resolve), as for --resume
    on the command line."""
    out_dir = check_run_dir(out_dir)
    model_cfg, cfg = resolve(overrides=given_fields(model_cfg, cfg), resumed=saved_configs(out_dir))
    model_cfg.validate()
    cfg.validate()
    return out_dir, model_cfg, cfg


def _train(model_cfg, cfg, claim, resume, log, interrupt_at_step, device, d: Dist) -> Path:
    out_dir = claim.out_dir
    device, log = this_process(d, device, cfg.batch_size, cfg.grad_accum, log)
    threads = set_threads(cfg.threads) if device.type == "cpu" else None
    # Resolved once and saved in config.json, so a resumed run computes exactly as it started.
    precision, why = resolve_precision(cfg.precision, device, model_cfg.n_embd)
    cfg = replace(cfg, precision=precision)

    # Data: rank 0 prepares it (or finds it in the run); the tokenizer fixes the vocabulary size.
    splits = open_run(claim, model_cfg, cfg, resume, log, d)
    model_cfg = replace(model_cfg, vocab_size=splits.tokenizer.vocab_size)

    # Model and optimizer, the same initial weights and batch windows on every rank.
    torch.manual_seed(cfg.seed)
    model = MiniGPT(model_cfg).to(device).prepare(attention_kernel(cfg.precision, device))
    optimizer = make_optimizer(model, cfg)
    batch_rng = torch.Generator().manual_seed(cfg.seed + 1)
    if d.enabled:
        torch.manual_seed(cfg.seed + 7919 * d.rank)  # but different dropout masks
    state = LoopState()
    if resume:  # continue exactly where the newest good checkpoint left off
        saved = restore_checkpoint(out_dir, model, optimizer, batch_rng, log, d)
        state = LoopState(saved["step"], saved["elapsed_s"], saved["best_val_nats"])
    # The causal mask is the only buffer and never changes: no need to broadcast it every step.
    net = DistributedDataParallel(model, forward_sync_buffers=False) if d.enabled else model
    run = Run(cfg, out_dir, splits, model, net, optimizer, batch_rng, d, log)

    budget = Budget(cfg, len(splits.train), model_cfg.block_size)
    unit = "chars" if splits.tokenizer.kind == "char" else f"{splits.tokenizer.kind} tokens"
    log(f"model: {model.num_parameters():,} parameters | vocab {model_cfg.vocab_size} | "
        f"data: {len(splits.train):,} train / {len(splits.val):,} held-out {unit} | "
        f"device {device}{f' ({threads} threads)' if threads else ''} | "
        f"precision {cfg.precision} ({why}) | run {out_dir}")
    if resume:
        log(f"resuming at step {state.step}")
        if budget.done(state.step, state.elapsed):
            log("the run has already used its budget: pass a larger --max-steps, --epochs or "
                "--max-time to train further")

    with tensorboard(out_dir, cfg.tensorboard and d.is_main, state.step):
        _loop(run, state, budget, interrupt_at_step)
    if d.is_main and cfg.plot_loss and (out_dir / METRICS).exists():
        draw_run_loss(out_dir, log)
    all_agree(d, True)  # leave together: no rank tears the group down while another still works
    return out_dir


def _loop(run: Run, state: LoopState, budget: Budget, interrupt_at_step: int | None) -> None:
    """Step until the budget is used or a stop is asked for; evaluate and checkpoint on the way."""
    cfg, splits = run.cfg, run.splits
    chars_per_step = cfg.batch_size * run.model.config.block_size * splits.chars_per_token("train")
    progress = Progress(budget) if run.d.is_main else None
    run.net.train()
    state.new_interval()
    mark = time.monotonic()  # training time is measured from here, eval and checkpoints excluded
    with StopRequest() as stop:
        try:
            while not budget.done(state.step, state.elapsed):
                state.lr = learning_rate(cfg, state.step, budget.progress(state.step, state.elapsed))
                loss = _forward_backward(run, state.lr)
                asked = stop.signal is not None or (interrupt_at_step is not None
                                                    and state.step + 1 >= interrupt_at_step)
                loss, spent, interrupted = step_sync(run.d, loss, time.monotonic() - mark, asked)
                mark = time.monotonic()
                _update_weights(run, loss, state.step + 1)
                state.step, state.elapsed = state.step + 1, state.elapsed + spent
                state.losses.append(loss)
                if state.step % 10 == 0:  # keep resident memory independent of the corpus size
                    release_pages(splits.train)
                seconds = max(time.monotonic() - state.interval_start, 1e-9)
                speed = len(state.losses) * chars_per_step / seconds  # characters per second
                if progress:
                    progress.update(state.step, state.elapsed, loss, speed)
                due = state.step % cfg.eval_interval == 0 or budget.done(state.step, state.elapsed)
                if due or interrupted:
                    if progress:
                        progress.update(state.step, state.elapsed, loss, speed, force=True)
                        progress.close()
                    _evaluate_and_save(run, state, speed)
                    state.new_interval()
                    mark = time.monotonic()
                if interrupted:
                    run.log(f"stopped at step {state.step} ({stop.signal or 'interrupt requested'}); "
                            f"checkpoint saved, continue with --resume {run.out_dir}")
                    break
        finally:
            if progress:
                progress.close()


def _forward_backward(run: Run, lr: float) -> float:
    """Set the learning rate, then add up the gradients of this rank's share of one global batch,
    grad_accum micro-batches at a time. Returns this rank's mean loss."""
    cfg, d = run.cfg, run.d
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    # The global batch's windows, the same on every rank; this rank takes its share.
    device = next(run.model.parameters()).device
    x, y = get_batch(run.splits.train, cfg.batch_size, run.model.config.block_size, run.batch_rng,
                     device)
    mine = share_of_batch(d, cfg.batch_size)
    x, y = x[mine], y[mine]
    micro = len(x) // cfg.grad_accum
    amp = autocast(cfg.precision, device)  # bf16 matrix products when cfg.precision is bf16
    run.optimizer.zero_grad(set_to_none=True)
    mean_loss = 0.0
    for k in range(cfg.grad_accum):
        part = slice(k * micro, (k + 1) * micro)
        last = k == cfg.grad_accum - 1
        # DDP averages gradients over ranks on backward; only the last micro-batch needs it.
        with run.net.no_sync() if d.enabled and not last else nullcontext():
            with amp:
                _, loss, _ = run.net(x[part], y[part])
            (loss / cfg.grad_accum).backward()  # gradients add up over micro-batches
        mean_loss += loss.item() / cfg.grad_accum
    return mean_loss


def _update_weights(run: Run, loss: float, step: int) -> None:
    """One optimizer step, with the gradient's global norm clipped first so that one odd batch
    cannot throw the weights far. A NaN or infinite loss stops training before it reaches the
    weights, so the last checkpoint stays good."""
    if not math.isfinite(loss):
        raise UserError(f"the loss became {loss} at step {step}: training "
                        f"diverged; try a lower --learning-rate (the last checkpoint in "
                        f"{run.out_dir} is kept as it was)")
    if run.cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.optimizer.step()


def _evaluate_and_save(run: Run, state: LoopState, speed: float) -> None:
    """Every rank: share its random state and check the weights agree. Rank 0 then estimates the
    held-out loss, logs it with a sample story and saves a checkpoint."""
    rngs = gather_objects(run.d, torch.get_rng_state())  # in the checkpoint: resume continues them
    check_replicas_agree(run.d, run.model, state.step, run.log)
    if not run.d.is_main:
        return
    val = estimate_loss(run.model, run.splits.val, run.cfg.eval_batches, run.cfg.batch_size,
                        run.cfg.seed)
    release_pages(run.splits.val)
    is_best, state.best_val = val < state.best_val, min(state.best_val, val)
    _log_eval(run, _metrics_record(run.splits, state, val, speed))
    rng = {"torch": rngs[0].clone(), "batches": run.batch_rng.get_state()}
    if len(rngs) > 1:  # under torchrun: every rank's dropout stream, so each continues its own
        rng.update({f"torch.{rank}": rank_rng for rank, rank_rng in enumerate(rngs)})
    save_checkpoint(run.out_dir, run.model, run.optimizer, {
        "step": state.step, "elapsed_s": state.elapsed, "best_val_nats": state.best_val,
        "val_nats": val, "world_size": len(rngs)}, rng, keep=run.cfg.keep_checkpoints, is_best=is_best)


def _metrics_record(splits: Splits, state: LoopState, val: float, speed: float) -> dict:
    """One line of metrics.jsonl. Losses are per token; bits per *character* of the text they
    stand for compare across tokenizers."""
    train_nats = sum(state.losses) / len(state.losses)
    train_cpt, val_cpt = splits.chars_per_token("train"), splits.chars_per_token("val")
    return {"step": state.step, "train_nats": train_nats, "val_nats": val,
            "train_bpc": train_nats / train_cpt / math.log(2), "val_bpc": val / val_cpt / math.log(2),
            "chars_per_token": val_cpt, "lr": state.lr, "chars_per_s": speed,
            "elapsed_s": state.elapsed}


def _log_eval(run: Run, record: dict) -> None:
    """Print and store held-out loss and a sample story."""
    unit = "char" if run.splits.tokenizer.kind == "char" else "token"
    run.log(f"step {record['step']}: train {record['train_nats']:.3f} nats/{unit} | held-out "
            f"{record['val_nats']:.3f} nats/{unit} = {record['val_bpc']:.3f} bits/char")
    append_metrics(run.out_dir, record)
    if run.cfg.sample_chars:
        sample_cfg = SampleConfig(max_new_tokens=None, max_new_chars=run.cfg.sample_chars,
                                  temperature=0.8)
        generator = make_generator(run.cfg.seed, next(run.model.parameters()).device)
        story = "".join(stream(run.model, run.splits.tokenizer, "", sample_cfg, generator))
        run.log(f"sample: {story}")
        append_sample(run.out_dir, record["step"], story)


class StopRequest:
    """While active, Ctrl-C and SIGTERM only note their name in `signal`: the loop finishes the
    step, saves a checkpoint and stops cleanly instead of dying mid-write."""

    def __init__(self):
        self.signal: str | None = None
        self._previous = {}

    def __enter__(self) -> StopRequest:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._note)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def __exit__(self, *_exc) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)

    def _note(self, signum, _frame) -> None:
        self.signal = signal.Signals(signum).name
