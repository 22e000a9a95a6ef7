"""Several processes, one model: PyTorch DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m minigpt train ...          # one machine, 2 processes
    torchrun --nnodes=2 --node_rank=0 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 --nproc_per_node=4 -m minigpt train ...

torchrun starts the processes and sets RANK, WORLD_SIZE and LOCAL_RANK; `setup` notices them and
joins the process group (gloo on CPU, nccl on CUDA). Every rank draws the same global batch of
window positions from the same seeded generator and trains on its own slice of it, so the union of
the ranks' batches is exactly the batch a single process would draw. DDP averages the gradients,
which makes a step with N processes the same step one process would take on the whole batch.
Rank 0 alone evaluates, prints, writes metrics and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .checkpoint import tensor_digest
from .errors import UserError


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def restarted_by_torchrun(d: Dist | None = None) -> bool:
    """True in workers that torchrun restarted after a failure (--max-restarts). Given the process
    group, true on every rank as soon as one rank was restarted: torchrun counts restarts per node
    (TORCHELASTIC_RESTART_COUNT), and a node whose own workers were healthy restarts them for the
    new round with its count unchanged (pytorch/pytorch#108158), so across machines only the node
    that failed may know. Every rank must decide the same way whether the run resumes."""
    mine = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0
    if d is None or not d.enabled:
        return mine
    return any(gather_objects(d, mine))


def setup(device_type: str) -> Dist:
    """Join the torchrun process group if there is one; otherwise a single-process Dist."""
    if not under_torchrun():
        return Dist()
    world = int(os.environ["WORLD_SIZE"])
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if world == 1:
        return Dist()
    owns = not dist.is_initialized()
    if owns:
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local, owns)


def teardown(d: Dist) -> None:
    if d.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def this_process(d: Dist, device: torch.device, batch_size: int, grad_accum: int, log):
    """This process's device and log function: under torchrun each rank takes its own GPU and
    only rank 0 speaks. First the global batch must share out evenly over ranks and micro-batches."""
    if batch_size % (d.world_size * grad_accum):
        raise UserError(f"batch_size {batch_size} must be divisible by processes "
                        f"({d.world_size}) x grad_accum ({grad_accum})")
    if not d.enabled:
        return device, log
    if d.is_main:
        micro = batch_size // (d.world_size * grad_accum)
        log(f"distributed: {d.world_size} processes, global batch {batch_size} = "
            f"{d.world_size} x {grad_accum} micro-batches of {micro}")
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
    return device, (log if d.is_main else _quiet)


def _quiet(*_args) -> None:
    pass


def share_of_batch(d: Dist, batch_size: int) -> slice:
    """This rank's rows of the global batch: rank r takes the r-th of world_size equal parts, so
    together the ranks train on exactly the batch one process would."""
    per_rank = batch_size // d.world_size
    return slice(d.rank * per_rank, (d.rank + 1) * per_rank)


def check_replicas_agree(d: Dist, model: torch.nn.Module, step: int, log) -> None:
    """Every rank must hold the same weights: DDP gave them the same averaged gradients. A digest
    per rank catches the silent drift (a rank that skipped a step, a nondeterministic kernel)
    that would otherwise only show as a worse model."""
    if not d.enabled:
        return
    digests = gather_objects(d, tensor_digest(model.state_dict()))
    if len(set(digests)) > 1:
        raise RuntimeError(f"ranks hold different weights at step {step}: {digests}")
    if d.is_main:
        log(f"step {step}: all {d.world_size} ranks hold identical weights")


def all_agree(d: Dist, ok: bool) -> bool:
    """True only if every rank passes ok=True (used after rank 0 prepares the run)."""
    if not d.enabled:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag.item() == 0.0


def step_sync(d: Dist, loss: float, elapsed: float, stop: bool) -> tuple[float, float, bool]:
    """Average the loss over ranks, and agree on the time used and on stopping (Ctrl-C on any
    rank, or rank 0's clock), so every rank leaves the loop at the same step."""
    if not d.enabled:
        return loss, elapsed, stop
    total = torch.tensor([loss])
    dist.all_reduce(total)
    flags = torch.tensor([elapsed, 1.0 if stop else 0.0], dtype=torch.float64)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return total.item() / d.world_size, flags[0].item(), flags[1].item() > 0


def gather_objects(d: Dist, value) -> list:
    """Every rank's `value`, in rank order (a one-element list when not distributed)."""
    if not d.enabled:
        return [value]
    out = [None] * d.world_size
    dist.all_gather_object(out, value)
    return out
