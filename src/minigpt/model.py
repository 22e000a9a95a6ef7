"""The transformer, top to bottom: attention -> feed-forward -> block -> MiniGPT.

    ids (B, T) -> token embedding + position embedding -> (B, T, C)
               -> n_layers x Block [LayerNorm -> attention -> +residual; LayerNorm -> MLP -> +residual]
               -> final LayerNorm -> linear head -> logits (B, T, vocab_size)

One forward runs the blocks for everything: training, evaluation, the learning tools and
generation. For generation it takes a `KVCache`, the keys and values of every position already
seen, for a batch of independent stories, each at its own position.

That is the seed's design (`--preset classic`). ModelConfig's "ladder" fields swap in the pieces
later small-model recipes use (ReLU², RMSNorm, QK-norm, rotary positions, value embeddings, x0
mixing, zero-initialised projections, a tied head, soft-capped logits); ladder.py explains each
one. The default takes two of them, the ones that won on a CPU (docs/ladder.md): rotary positions
instead of the position table, and GELU instead of ReLU. Read the seed's path first: every option
is an `if` beside it.

This file knows nothing about files, devices, data or logging: it is the model and nothing else.
Letters used in shapes: B batch, T time (characters), C channels (n_embd), H heads, D head size,
L block_size (the longest context).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cache import KVCache
from .config import ModelConfig
from .ladder import ACTIVATIONS, RMSNorm, Rotary, make_norm, rotate, softcap


class Linear(nn.Linear):
    """nn.Linear, y = x W^T + b, with W (out, in) kept in memory as the rows of W^T.

    The values, the shape (out, in) and the state_dict are nn.Linear's; only the memory order
    differs. Generation multiplies a few rows at a time, where the cost is reading W, and a CPU
    reads it ~1.5x faster in this order (bench/speed/generation.py); training's large products do not
    mind either order.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.weight = nn.Parameter(self.weight.detach().t().contiguous().t())


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention.

    Every position asks a question (query), advertises what it holds (key) and offers content
    (value). A position's output is the average of the values of the positions it may see, weighted
    by how well their keys answer its query. "Causal" means it may only see itself and the past:
    that is what lets one forward pass train on every next-character prediction at once without
    the answer leaking in from the right.

    Two implementations compute the same thing. `explicit_attention` writes every step out so a
    learner can follow it, and is the one that can hand back the attention weights; the fast path
    calls one fused kernel that never keeps the T x T weights. Which kernel is fastest depends on
    the hardware and the precision; `use_kernel` sets it once (MiniGPT.prepare), not on every call.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_size = config.head_size
        self.attention = config.attention
        self.kernel = "sdpa"  # the fast path's kernel: "sdpa" or "baddbmm" (see use_kernel)
        # Dropout on the attention weights themselves: costly on a CPU (a random mask of
        # B x H x T x T per layer), so it has its own knob; by default it follows `dropout`.
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        # One Linear makes queries, keys and values for all heads at once: 3 * C outputs.
        self.qkv = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(self.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # The causal mask: position t may attend to positions 0..t. Stored once, sliced per call.
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)
        # The same mask as numbers to add to the scores: 0 where allowed, -inf in the future.
        bias = torch.zeros(config.block_size, config.block_size).masked_fill(~mask, float("-inf"))
        self.register_buffer("causal_bias", bias, persistent=False)
        # QK-norm (ladder.py; OLMo 2, Gemma 3, modded-nanogpt): each head's queries and keys are
        # divided by their RMS (times a learned gain), so a score cannot grow without bound as the
        # weights grow: softmax never saturates suddenly, which tolerates a higher learning rate.
        self.q_norm = RMSNorm(self.head_size) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_size) if config.qk_norm else None
        # Value embeddings (modded-nanogpt): this layer's values get ve_scale times a second
        # embedding of the token itself (MiniGPT.value_embedding), so what a position offers to
        # the others includes "which character am I" however much the stream has mixed it.
        self.ve_scale = nn.Parameter(torch.full((1,), 0.5)) if config.value_embeddings else None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, H, T, D): each head works on its own slice of the channels."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, T, C): put the heads' outputs side by side again."""
        return x.transpose(1, 2).flatten(2)

    def visible(self, Tq: int, Tk: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Which keys each query may see (True = visible). Without a mask from the cache, the Tq
        queries are the last Tq of the Tk positions (earlier ones came from the cache), so query i
        sits at position Tk - Tq + i and may see keys 0 .. Tk - Tq + i."""
        return self.causal_mask[Tk - Tq : Tk, :Tk] if mask is None else mask

    def explicit_attention(self, q, k, v, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """softmax(q k^T / sqrt(D) + mask) v, written out. q: (B,H,Tq,D); k, v: (B,H,Tk,D).
        Returns the output (B, H, Tq, D) and the attention weights (B, H, Tq, Tk)."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)  # (B, H, Tq, Tk)
        scores = scores.masked_fill(~self.visible(q.size(2), k.size(2), mask), float("-inf"))
        weights = F.softmax(scores, dim=-1)  # each row sums to 1; the future gets zero weight
        return self.attn_dropout(weights) @ v, weights

    def fast_attention(self, q, k, v, mask=None) -> torch.Tensor:
        """The same result from one fused kernel, chosen once by `use_kernel`."""
        dropout = self.dropout if self.training else 0.0
        if self.kernel == "baddbmm":
            return self.baddbmm_attention(q, k, v, mask, dropout)
        if mask is not None:  # rows at different positions: the cache's own mask
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        Tq, Tk = q.size(2), k.size(2)
        if Tq == Tk:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        if Tq == 1:  # one new position sees every cached one: nothing to hide
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.visible(Tq, Tk, None),
                                              dropout_p=dropout)

    def baddbmm_attention(self, q, k, v, mask, dropout: float) -> torch.Tensor:
        """The explicit formula in three calls: scores = mask + (q k^T) / sqrt(D) in one baddbmm,
        a softmax, and weights @ v. In bf16 on a CPU it is ~4x faster than PyTorch's fused kernel
        (bench/speed/precision.py)."""
        B, H, Tq, D = q.shape
        Tk = k.size(2)
        if mask is None:
            bias = self.causal_bias[Tk - Tq : Tk, :Tk].to(q.dtype)
        else:  # per-row masks from the cache: (B, 1, Tq, Tk) -> one bias per (row, head)
            bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
            bias = bias.expand(B, H, Tq, Tk).reshape(B * H, Tq, Tk)
        scores = torch.baddbmm(bias, q.reshape(B * H, Tq, D), k.reshape(B * H, Tk, D).transpose(1, 2),
                               alpha=1.0 / math.sqrt(D))
        weights = F.dropout(torch.softmax(scores, dim=-1), dropout, self.training)
        return (weights @ v.reshape(B * H, Tk, D)).view(B, H, Tq, D)

    def use_kernel(self, kernel: str) -> None:
        if kernel not in ("sdpa", "baddbmm"):
            raise ValueError(f"kernel must be 'sdpa' or 'baddbmm', got {kernel!r}")
        self.kernel = kernel

    def forward(self, x: torch.Tensor, cache=None, need_weights: bool = False, rope=None, ve=None):
        """x: (B, T, C) -> (output (B, T, C), attention weights or None).

        `cache` (layer, KVCache, slots, mask) adds this step's keys and values to the cache and
        attends over all of them; `need_weights` runs the explicit path and returns its weights.
        `rope` (cos, sin) turns q and k by their positions; `ve` (B, T, C) is added to the values.
        """
        # (B, T, 3C) -> (B, T, 3, H, D) -> (3, B, H, T, D): q, k, v, each head its own channels.
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_size)).permute(2, 0, 3, 1, 4)
        qk, v = qkv[:2], qkv[2]  # queries and keys (2, B, H, T, D) stay together while they can
        if self.q_norm is not None:
            qk = torch.stack((self.q_norm(qk[0]), self.k_norm(qk[1])))
        if rope is not None:  # the cache keeps keys already turned: they never change again
            qk = rotate(qk, *rope)
        q, k = qk.unbind(0)
        if ve is not None:
            v = v + self.ve_scale * ve.unflatten(-1, (self.num_heads, self.head_size)).transpose(1, 2)
        mask = None
        if cache is not None:
            layer, kv, slots, mask = cache
            k, v = kv.store(layer, k, v, slots)
        weights = None
        if need_weights or self.attention == "explicit":
            y, weights = self.explicit_attention(q, k, v, mask)
            weights = weights if need_weights else None
        else:
            y = self.fast_attention(q, k, v, mask)
        return self.resid_dropout(self.proj(self.merge_heads(y))), weights


class FeedForward(nn.Module):
    """Per-position MLP: widen to ff_hidden_mult * C, ReLU, project back. Where tokens 'think'.

    The nonlinearity is the seed's ReLU unless config.activation picks ReLU² or GELU (ladder.py)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden = config.ff_hidden_mult * config.n_embd
        self.up = Linear(config.n_embd, hidden, bias=config.bias)
        self.down = Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.activation(self.up(x))))


class Block(nn.Module):
    """One decoder block, pre-LayerNorm: x + attention(norm(x)), then x + mlp(norm(x)).

    Normalising *before* each sub-layer (GPT-2 style) keeps the residual path a clean sum, which
    makes deep stacks train without careful learning-rate tuning. (config.norm: LayerNorm or RMSNorm.)
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = make_norm(config.norm, config.n_embd, config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = make_norm(config.norm, config.n_embd, config.bias)
        self.mlp = FeedForward(config)
        # x0 mixing (modded-nanogpt): the block reads a * x + b * x0, x0 the embeddings. It starts
        # as the seed's block (a = 1, b = 0); learning b lets a deep layer see the characters
        # themselves again, and a lets it damp what the layers below wrote.
        self.x0_mix = nn.Parameter(torch.tensor([1.0, 0.0])) if config.x0_mixing else None

    def forward(self, x, cache=None, need_weights: bool = False, x0=None, rope=None, ve=None):
        if self.x0_mix is not None:
            x = self.x0_mix[0] * x + self.x0_mix[1] * x0
        attn_out, weights = self.attn(self.ln1(x), cache, need_weights, rope, ve)
        x = x + attn_out
        x = x + self.mlp(self.ln2(x))
        return x, weights


class MiniGPT(nn.Module):
    """A character-level GPT: embeddings, a stack of blocks, a final norm and a linear head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        if config.vocab_size <= 0:
            raise ValueError("set config.vocab_size (from the tokenizer) before building the model")
        self.config = config
        V, C = config.vocab_size, config.n_embd
        self.token_embedding = nn.Embedding(V, C)
        # Where a character sits: a learned vector per position added here (the seed's), or with
        # positions="rope" no table at all: every head's queries and keys are turned by their
        # position (ladder.Rotary), so attention sees only how far apart two characters are.
        learned = config.positions == "learned"
        self.position_embedding = nn.Embedding(config.block_size, C) if learned else None
        self.rotary = None if learned else Rotary(config.head_size, config.block_size)
        # Value embeddings: one more token table, shared by all layers (CausalSelfAttention.ve_scale).
        self.value_embedding = nn.Embedding(V, C) if config.value_embeddings else None
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = make_norm(config.norm, C, config.bias)
        # An untied head (the seed's) has a table of its own; a tied one (GPT-2, tie_head) scores
        # each character by its own input embedding: one V x C table learns both jobs.
        self.head = None if config.tie_head else Linear(C, V, bias=False)
        self.apply(self._init_weights)
        # GPT-2 scales the layers that write into the residual stream by 1/sqrt(2 * n_layers):
        # each block adds two such outputs, and this keeps the stream's variance from growing
        # with depth. zero_init (modded-nanogpt) starts them at zero instead: every block begins
        # as the identity and the stream is the embeddings, until training makes a block useful.
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                if config.zero_init:
                    nn.init.zeros_(param)
                else:
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None, need_weights: bool = False, states: list | None = None):
        """ids: (B, T) token ids -> (logits (B, T, V), loss or None, attention weights or None).

        With `cache`, row b of `ids` holds the *next* T tokens of the cache's row b: their
        positions continue from where that row ends, and the cache is extended by T in every row.
        `need_weights` returns each layer's attention weights, (n_layers, B, H, T, T_seen).
        `states`, a list, gets the residual stream (B, T, C) after the embeddings and after each
        block appended to it: what the model holds at every depth (introspect.py shows it).
        """
        T = ids.size(1)
        if cache is None:
            if T > self.config.block_size:
                raise ValueError(f"sequence of {T} exceeds block_size {self.config.block_size}")
            positions = torch.arange(T, device=ids.device)
            slots = mask = None
        else:
            positions, mask, slots = cache.plan(T, ids.device)
        x, rope = self.token_embedding(ids), None
        if self.position_embedding is not None:
            x = x + self.position_embedding(positions)
        else:
            rope = self.rotary(positions)
        x = x0 = self.dropout(x)
        ve = None if self.value_embedding is None else self.value_embedding(ids)
        maps, states = [], states if states is not None else []
        states.append(x)
        for i, block in enumerate(self.blocks):
            layer_cache = None if cache is None else (i, cache, slots, mask)
            x, weights = block(x, layer_cache, need_weights, x0, rope, ve)
            maps.append(weights)
            states.append(x)
        if cache is not None:
            cache.advance(T)
        logits = self.readout(x)
        loss = None
        if targets is not None:
            # Teacher forcing: every position is scored on the true next character.
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss, torch.stack(maps) if need_weights else None

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream (..., C) -> logits (..., V): the final norm, then the head's score
        for every token (soft-capped where config.logit_softcap says)."""
        x = self.ln_f(x)
        logits = self.head(x) if self.head is not None else F.linear(x, self.token_embedding.weight)
        if self.config.logit_softcap is not None:
            logits = softcap(logits, self.config.logit_softcap)
        return logits

    def set_attention(self, kind: str) -> None:
        """Switch every layer between the 'explicit' and 'fast' attention paths."""
        if kind not in ("fast", "explicit"):
            raise ValueError(f"attention must be 'fast' or 'explicit', got {kind!r}")
        self.config.attention = kind
        for block in self.blocks:
            block.attn.attention = kind

    def prepare(self, kernel: str) -> MiniGPT:
        """Pick the fast path's attention kernel for every layer, once: 'sdpa' (PyTorch's fused
        kernel) or 'baddbmm' (for bf16 on a CPU). precision.attention_kernel() says which."""
        for block in self.blocks:
            block.attn.use_kernel(kernel)
        return self
