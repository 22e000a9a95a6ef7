"""The transformer, top to bottom: attention -> feed-forward -> block -> MiniGPT.

    ids (B, T) -> token embedding + position embedding -> (B, T, C)
               -> n_layers x Block [LayerNorm -> attention -> +residual; LayerNorm -> MLP -> +residual]
               -> final LayerNorm -> linear head -> logits (B, T, vocab_size)

This file knows nothing about files, devices, data or logging: it is the model and nothing else.
Letters used in shapes: B batch, T time (characters), C channels (n_embd), H heads, D head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

# forward()'s cache is one (keys, values) pair per layer, each shaped (B, H, T_past, D): simple,
# and what the tests compare against. Generation uses the preallocated `KVCache` and `decode()`.
PastKV = list[tuple[torch.Tensor, torch.Tensor]]


def _affine(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight_t + bias for 2-D x and a transposed (in, out) weight, in one call."""
    return x @ weight_t if bias is None else torch.addmm(bias, x, weight_t)


class KVCache:
    """Keys and values of every position seen so far, for every layer, in buffers allocated once.

    keys[i] / values[i]: (B, H, block_size, D) for layer i; the first `length` positions are
    filled. Growing a tensor with torch.cat every step would copy the whole cache each time; here
    a step writes one slot.
    """

    def __init__(self, config: ModelConfig, batch: int = 1, dtype=torch.float32, device="cpu"):
        shape = (batch, config.num_heads, config.block_size, config.head_size)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.length = 0


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention.

    Every position asks a question (query), advertises what it holds (key) and offers content
    (value). A position's output is the average of the values of the positions it may see, weighted
    by how well their keys answer its query. "Causal" means it may only see itself and the past:
    that is what lets one forward pass train on every next-character prediction at once without
    the answer leaking in from the right.

    Two implementations compute the same thing. `explicit` writes every step out so a learner can
    follow it; `fast` calls PyTorch's fused kernel, which never stores the T x T score matrix.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_size = config.head_size
        self.attention = config.attention
        # Dropout on the attention weights themselves: costly on a CPU (a random mask of
        # B x H x T x T per layer), so it has its own knob; by default it follows `dropout`.
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        # One Linear makes queries, keys and values for all heads at once: 3 * C outputs.
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(self.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # The causal mask: position t may attend to positions 0..t. Stored once, sliced per call.
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)
        # The same mask as numbers to add to the scores: 0 where allowed, -inf in the future.
        bias = torch.zeros(config.block_size, config.block_size).masked_fill(~mask, float("-inf"))
        self.register_buffer("causal_bias", bias, persistent=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, H, T, D): each head works on its own slice of the channels."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, T, C): put the heads' outputs side by side again."""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).contiguous().view(B, T, self.num_heads * self.head_size)

    def explicit_attention(self, q, k, v) -> torch.Tensor:
        """softmax(q k^T / sqrt(D) + mask) v, written out. q: (B,H,Tq,D); k, v: (B,H,Tk,D)."""
        Tq, Tk = q.size(2), k.size(2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)  # (B, H, Tq, Tk)
        # The Tq queries are the last Tq of the Tk positions (earlier ones came from the cache),
        # so query i sits at absolute position Tk - Tq + i and may see keys 0 .. Tk - Tq + i.
        mask = self.causal_mask[Tk - Tq : Tk, :Tk]
        scores = scores.masked_fill(~mask, float("-inf"))  # the future gets zero weight
        weights = F.softmax(scores, dim=-1)  # each row sums to 1
        self.last_weights = weights.detach()  # kept for anyone who wants to look at them
        weights = self.attn_dropout(weights)
        return weights @ v  # (B, H, Tq, D)

    def fast_attention(self, q, k, v) -> torch.Tensor:
        Tq, Tk = q.size(2), k.size(2)
        dropout = self.dropout if self.training else 0.0
        if q.dtype == torch.bfloat16 and q.device.type == "cpu" and Tq > 1:
            # PyTorch's fused CPU kernel is ~4x slower in bf16 than this (bench/precision.py).
            return self.batched_matmul_attention(q, k, v, dropout)
        if Tq == Tk:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        # With a cache the queries are offset from the keys, which is_causal does not express.
        mask = self.causal_mask[Tk - Tq : Tk, :Tk]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)

    def batched_matmul_attention(self, q, k, v, dropout: float) -> torch.Tensor:
        """The explicit formula in three fused calls, for bf16 on CPUs with bf16 matrix units:
        scores = mask + (q k^T) / sqrt(D) in one baddbmm, a softmax, and weights @ v."""
        B, H, Tq, D = q.shape
        Tk = k.size(2)
        bias = self.causal_bias[Tk - Tq : Tk, :Tk].to(q.dtype)
        scores = torch.baddbmm(bias, q.reshape(B * H, Tq, D), k.reshape(B * H, Tk, D).transpose(1, 2),
                               alpha=1.0 / math.sqrt(D))
        weights = F.dropout(torch.softmax(scores, dim=-1), dropout, self.training)
        return (weights @ v.reshape(B * H, Tk, D)).view(B, H, Tq, D)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x: (B, T, C). `past` holds earlier keys and values; returns (output, (keys, values))."""
        q, k, v = self.qkv(x).split(x.size(-1), dim=2)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        attend = self.explicit_attention if self.attention == "explicit" else self.fast_attention
        y = self.merge_heads(attend(q, k, v))
        return self.resid_dropout(self.proj(y)), (k, v)


class FeedForward(nn.Module):
    """Per-position MLP: widen to ff_hidden_mult * C, ReLU, project back. Where tokens 'think'."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden = config.ff_hidden_mult * config.n_embd
        self.up = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.relu(self.up(x))))


class Block(nn.Module):
    """One decoder block, pre-LayerNorm: x + attention(norm(x)), then x + mlp(norm(x)).

    Normalising *before* each sub-layer (GPT-2 style) keeps the residual path a clean sum, which
    makes deep stacks train without careful learning-rate tuning.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)

    def forward(self, x, past=None):
        attn_out, present = self.attn(self.ln1(x), past)
        x = x + attn_out
        x = x + self.mlp(self.ln2(x))
        return x, present


class MiniGPT(nn.Module):
    """A character-level GPT: embeddings, a stack of blocks, a final norm and a linear head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        if config.vocab_size <= 0:
            raise ValueError("set config.vocab_size (from the tokenizer) before building the model")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)  # learned
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2 scales the layers that write into the residual stream by 1/sqrt(2 * n_layers):
        # each block adds two such outputs, and this keeps the stream's variance from growing
        # with depth.
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
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
                past: PastKV | None = None):
        """ids: (B, T) token ids. Returns (logits (B, T, V), loss or None, new KV cache).

        With `past`, `ids` are the *next* tokens after the cached ones, and positions continue
        from where the cache ends.
        """
        B, T = ids.shape
        start = 0 if past is None else past[0][0].size(2)
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} exceeds block_size {self.config.block_size}")
        positions = torch.arange(start, start + T, device=ids.device)
        x = self.dropout(self.token_embedding(ids) + self.position_embedding(positions))
        present: PastKV = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[i])
            present.append(kv)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            # Teacher forcing: every position is scored on the true next character.
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss, present

    def decode_weights(self) -> list[tuple[torch.Tensor | None, ...]]:
        """Per layer, the tensors decode() uses, gathered once per story rather than once per
        character (a module attribute lookup costs about as much as a small tensor operation).
        Matrices are stored transposed, (in, out), the layout a one-row product is fastest in.
        A snapshot: take a new one after changing the weights."""
        def t(linear: nn.Linear) -> torch.Tensor:
            return linear.weight.detach().t().contiguous()
        return [(b.ln1.weight, b.ln1.bias, t(b.attn.qkv), b.attn.qkv.bias, t(b.attn.proj),
                 b.attn.proj.bias, b.ln2.weight, b.ln2.bias, t(b.mlp.up), b.mlp.up.bias,
                 t(b.mlp.down), b.mlp.down.bias) for b in self.blocks]

    @torch.inference_mode()
    def decode(self, ids: torch.Tensor, cache: KVCache,
               weights: list[tuple[torch.Tensor | None, ...]] | None = None) -> torch.Tensor:
        """Logits (B, V) for the position after `ids` (B, T), which continue the cached positions.

        The same arithmetic as forward() in eval mode, trimmed for generation, where it runs once
        per character and per-operation overhead matters more than arithmetic: plain matrix
        products on tensors gathered once (`weights`, from decode_weights()), keys and values
        written into the preallocated cache, one new position attending to the whole cache
        without a mask, no autograd bookkeeping, and the head applied to the last position only.
        tests/test_fast_paths.py checks it against forward().
        """
        B, T = ids.shape
        start, end = cache.length, cache.length + T
        if end > self.config.block_size:
            raise ValueError(f"sequence of {end} exceeds block_size {self.config.block_size}")
        C, H, D = self.config.n_embd, self.config.num_heads, self.config.head_size
        x = F.embedding(ids.reshape(-1), self.token_embedding.weight)  # (B*T, C) rows
        x = (x.view(B, T, C) + self.position_embedding.weight[start:end]).view(B * T, C)
        mask = None if T == 1 else self.blocks[0].attn.causal_mask[start:end, :end]
        for (ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, up_w, up_b, down_w,
             down_b), keys, values in zip(weights or self.decode_weights(), cache.keys, cache.values):
            h = F.layer_norm(x, (C,), ln1_w, ln1_b)
            q, k, v = _affine(h, qkv_w, qkv_b).view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
            keys[:, :, start:end] = k  # each (B, H, T, D)
            values[:, :, start:end] = v
            y = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=mask)
            x = x + _affine(y.transpose(1, 2).reshape(B * T, C), proj_w, proj_b)
            h = F.layer_norm(x, (C,), ln2_w, ln2_b)
            x = x + _affine(F.relu(_affine(h, up_w, up_b)), down_w, down_b)
        cache.length = end
        last = x.view(B, T, C)[:, -1]
        return F.linear(F.layer_norm(last, (C,), self.ln_f.weight, self.ln_f.bias), self.head.weight,
                        self.head.bias)

    def set_attention(self, kind: str) -> None:
        """Switch every layer between the 'explicit' and 'fast' attention paths."""
        if kind not in ("fast", "explicit"):
            raise ValueError(f"attention must be 'fast' or 'explicit', got {kind!r}")
        self.config.attention = kind
        for block in self.blocks:
            block.attn.attention = kind
