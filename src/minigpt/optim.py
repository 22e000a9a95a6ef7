"""Optimizers: AdamW for everything (the classic), or Muon for the hidden matrices.

AdamW scales every parameter's step by a running estimate of its gradient's size, entry by entry.
Muon (MomentUm Orthogonalized by Newton-schulz, Keller Jordan 2024) treats a weight matrix as a
matrix: it keeps a momentum of the gradient, replaces that (m x n) momentum G = U S V^T by the
nearest orthogonal matrix U V^T -- every direction the gradient points in gets the same step
size, so rare directions are not drowned out by the dominant ones -- and steps along it.
Computing U V^T exactly needs an SVD; five iterations of a quintic polynomial in G G^T get close
enough using only matrix products (`orthogonalize`).

Muon is only for the 2-D matrices inside the blocks (attention and MLP). Embeddings, the output
head, biases and LayerNorm gains are not "matrices acting on a vector" in the same sense and stay
with AdamW, in the same optimizer object, so one state_dict checkpoints both. The orthogonal
step is rescaled to the size of a typical AdamW step (0.2 * sqrt(max(m, n)), after Moonshot AI's
"Muon is Scalable for LLM Training", 2025), so --learning-rate and --weight-decay mean the same
for both optimizers. `make_optimizer` sorts a model's parameters into those groups;
`learning_rate` is the schedule both follow.
"""

from __future__ import annotations

import math

import torch

from .config import TrainConfig

# Coefficients of the quintic x -> a x + b x^3 + c x^5 that pushes every singular value in
# (0, 1] towards ~1 in five steps (from Keller Jordan's Muon write-up).
NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalize(G: torch.Tensor, steps: int = NS_STEPS, dtype=torch.bfloat16) -> torch.Tensor:
    """Approximately U V^T for G = U S V^T; G is (m, n) or a batch (k, m, n) of matrices.

    Each iteration is X <- a X + (b A + c A^2) X with A = X X^T, which maps every singular value
    s to a s + b s^3 + c s^5. Dividing by the Frobenius norm first puts them all in (0, 1].
    For a tall X (m > n) the same map is X <- a X + X (b A + c A^2) with A = X^T X: A is always
    the small square, min(m, n) on a side. Written as baddbmm calls (C <- beta C + alpha A B),
    which fuse each product with the sum after it.
    """
    if G.dim() == 2:
        return orthogonalize(G.unsqueeze(0), steps, dtype).squeeze(0)
    X = G.to(dtype)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    a, b, c = NS_COEFFS
    tall = X.size(-2) > X.size(-1)
    for _ in range(steps):
        A = X.transpose(-2, -1) @ X if tall else X @ X.transpose(-2, -1)
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)
        X = torch.baddbmm(X, X, B, beta=a) if tall else torch.baddbmm(X, B, X, beta=a)
    return X.to(G.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for groups marked `muon=True`, AdamW for the rest.

    Muon group step, for a weight W (m x n) with gradient g:
        M <- momentum * M + g;  direction = g + momentum * M (Nesterov)
        W <- W * (1 - lr * weight_decay) - lr * 0.2 * sqrt(max(m, n)) * orthogonalize(direction)
    Matrices of the same shape (e.g. every layer's MLP up-projection) are orthogonalized together
    in one batched call.
    """

    def __init__(self, param_groups, lr: float, betas=(0.9, 0.99), momentum: float = 0.95,
                 eps: float = 1e-8, ns_dtype=torch.bfloat16):
        defaults = dict(lr=lr, betas=betas, momentum=momentum, eps=eps, weight_decay=0.0,
                        muon=False)
        super().__init__(param_groups, defaults)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:  # the torch.optim convention: re-evaluate the loss first
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["muon"]:
                self._muon_step(params, group)
            else:
                self._adamw_step(params, group)
        return loss

    def _muon_step(self, params, group):
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        by_shape: dict[torch.Size, list[torch.Tensor]] = {}
        for p in params:
            by_shape.setdefault(p.shape, []).append(p)
        for shape, same in by_shape.items():
            directions = []
            for p in same:
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                buf = state["momentum"]
                buf.mul_(mu).add_(p.grad)  # M <- momentum * M + g
                directions.append(p.grad.add(buf, alpha=mu))  # Nesterov: g + momentum * M
            updates = orthogonalize(torch.stack(directions), dtype=self.ns_dtype)
            scale = 0.2 * max(shape) ** 0.5  # the RMS of an AdamW step, about 0.2 per entry
            for p, update in zip(same, updates):
                p.mul_(1 - lr * wd).add_(update, alpha=-lr * scale)

    def _adamw_step(self, params, group):
        """AdamW, as torch.optim.AdamW computes it: running averages of the gradient (m) and of
        its square (v), both corrected for starting at zero; step m / (sqrt(v) + eps) per entry;
        weight decay applied to the weight directly (decoupled), not through the gradient."""
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros(())
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"].item()
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v / (1 - beta2 ** t)).sqrt_().add_(eps)
            p.mul_(1 - lr * wd).addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or Muon for the blocks' matrices) with weight decay on Linear weights only:
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
    """Linear warmup over warmup_steps, then down from the peak to min_lr_ratio * peak by
    cfg.schedule: a cosine (the default), or wsd, warmup-stable-decay (MiniCPM, Hu et al. 2024).

    `progress` (0..1) is how much of the budget is used: steps, epochs or wall-clock time,
    whichever runs out first (train.Budget.progress), so under --max-time both curves follow the
    clock and wsd decays in the last decay_fraction of the wall time.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = min(1.0, progress)
    low = cfg.learning_rate * cfg.min_lr_ratio
    if cfg.schedule == "wsd":
        # Stable: the peak until 1 - decay_fraction of the budget; decay: a straight line from
        # the peak there to `low` at the end. A long flat stretch at the peak learns fast, and
        # the short decay at the end settles into the valley it found.
        left = min(1.0, (1.0 - progress) / cfg.decay_fraction)  # 1 until the decay, then 1 -> 0
        return low + (cfg.learning_rate - low) * left
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return low + (cfg.learning_rate - low) * cosine
