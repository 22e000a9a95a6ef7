"""The architecture ladder: the small pieces model.py can swap in for the seed's, one idea each.

The seed's GPT is GPT-2's recipe of 2019. Since then the public speed-runs for small models
(Keller Jordan's modded-nanogpt, Karpathy's nanochat) and the papers they borrow from have found
changes that each buy a little quality for the same compute. Every one of them is one field of
ModelConfig, off by default, so the seed's design is what you read first and each idea can be
measured on its own (docs/ladder.md):

    activation  relu (the seed's) | relu2 | gelu        the MLP's nonlinearity
    norm        layernorm (the seed's) | rmsnorm         before each sub-layer and before the head
    qk_norm     RMSNorm of each head's queries and keys before attention
    positions   learned (the seed's) | rope              a position table, or rotated queries and keys
    value_embeddings, x0_mixing, zero_init, tie_head, logit_softcap   (in model.py itself)

This module holds the pieces that are functions or tiny modules of their own: activations, the
norm choice, rotary embeddings and the soft cap. The ideas that are a line or two inside a block
(value embeddings, x0 mixing, zero init, the tied head) live where they act, in model.py, with a
comment naming their source.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def relu2(x: torch.Tensor) -> torch.Tensor:
    """ReLU squared (So et al., "Primer", 2021; the modded-nanogpt speed-run's MLP). Zero for
    negative inputs like ReLU, but it grows quadratically: large features stand out more, and the
    gradient is 2x rather than a step, which the speed-runs found learns faster than ReLU or GELU."""
    return F.relu(x).square()


# The MLP's nonlinearity, by ModelConfig.activation. GELU is GPT-2's (a smooth ReLU: x * P(X <= x)).
ACTIVATIONS = {"relu": F.relu, "relu2": relu2, "gelu": F.gelu}


def make_norm(kind: str, size: int, bias: bool) -> nn.Module:
    """The norm before each sub-layer, by ModelConfig.norm.

    layernorm (the seed's, GPT-2's): subtract each vector's mean, divide by its standard
    deviation, then a learned gain (and bias). rmsnorm (Zhang & Sennrich 2019; LLaMA, and every
    speed-run since): divide by the root mean square only, no mean subtracted and no bias. It
    keeps what matters (the scale of the residual stream stays fixed) with fewer operations on
    paper; on this CPU, though, torch's RMSNorm trained ~15% fewer steps in 10 minutes than its
    fused LayerNorm (docs/ladder.md)."""
    if kind == "rmsnorm":
        return RMSNorm(size)
    return nn.LayerNorm(size, bias=bias)


class RMSNorm(nn.RMSNorm):
    """x / sqrt(mean(x^2) + eps) * gain: torch's RMSNorm, with the gain in the input's precision.
    Under bf16 autocast a Linear hands over bf16, and autocast casts LayerNorm's inputs but not
    RMSNorm's; a bf16 input with an fp32 gain would miss torch's fused kernel."""

    def __init__(self, size: int):
        super().__init__(size, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class Rotary(nn.Module):
    """Rotary position embeddings (Su et al., "RoFormer", 2021; LLaMA, modded-nanogpt).

    Instead of adding a learned position vector to every token, each head's query and key are
    rotated by an angle proportional to their position: the D dimensions form D/2 pairs, and
    pair i turns by position * base^(-2i/D), fast for the first pairs and slow for the last.
    A dot product of two rotated vectors depends only on the difference of their angles, so an
    attention score depends only on how far apart the two characters are, not on where they
    sit in the window. There is no table to learn, so the model spends no parameters or
    training steps learning positions, and what it learns at one offset holds at every other.

    forward(positions) gives the cos and sin of every dimension's angle (a pair's two dimensions
    share one), shaped to broadcast over heads: positions (T,) -> (1, T, D); a cache's per-row
    (B, T) -> (B, 1, T, D). The sin of each pair's first dimension is stored negated: see rotate.
    """

    def __init__(self, head_size: int, block_size: int, base: float = 10000.0):
        super().__init__()
        pair_speed = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)
        angles = torch.arange(block_size, dtype=torch.float32)[:, None] * pair_speed  # (L, D/2)
        # Computed from the shape alone, never saved: the state_dict stays the learned weights.
        self.register_buffer("cos", torch.cat((angles.cos(), angles.cos()), -1), persistent=False)
        self.register_buffer("sin", torch.cat((-angles.sin(), angles.sin()), -1), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[positions].unsqueeze(-3), self.sin[positions].unsqueeze(-3)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each pair (x1[i], x2[i]) of x (..., T, D) by its angle; the first and second halves
    of D are the pairs' two coordinates. A turn by angle a is

        (x1, x2) -> (x1 cos a - x2 sin a,  x2 cos a + x1 sin a)

    which, with the pairs' halves swapped, (x2, x1), and the sign kept in Rotary's sin table
    (-sin a, sin a), is x * cos + swapped * sin: two products and a sum over the whole vector,
    fewer operations than four products on the halves (and the same numbers). Lengths are kept:
    a rotation only changes direction."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos.to(x.dtype) + torch.cat((x2, x1), dim=-1) * sin.to(x.dtype)


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(logits / cap) (Gemma 2; modded-nanogpt caps at 15 to 30): about the identity
    for small logits, but never past +-cap, so the model cannot become extremely confident about
    one character and a few huge gradients from over-confident mistakes cannot derail training."""
    return cap * torch.tanh(logits / cap)


# Each rung of the ladder as the ModelConfig fields that switch it on, for whoever walks the
# ladder one idea at a time (tests/test_ladder.py, bench/).
RUNGS: dict[str, dict] = {
    "gelu": {"activation": "gelu"}, "relu2": {"activation": "relu2"}, "rmsnorm": {"norm": "rmsnorm"},
    "qk_norm": {"qk_norm": True}, "rope": {"positions": "rope"},
    "value_embeddings": {"value_embeddings": True}, "x0_mixing": {"x0_mixing": True},
    "zero_init": {"zero_init": True}, "tie_head": {"tie_head": True},
    "logit_softcap": {"logit_softcap": 15.0},
}
