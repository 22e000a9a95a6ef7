"""The KV cache: the keys and values of every position a stream has seen, kept for generation.

model.py's forward() asks the cache where new positions go (`plan`) and writes each layer's keys
and values into it (`store`); engine.py moves rows around. (Its own module since issue #20, so
model.py stays a read of the model alone.)

With rotary positions (ModelConfig.positions = "rope") the cache holds keys already rotated to
their positions: a key never changes once written, whichever kind of positions the model uses.
"""

from __future__ import annotations

import torch

from .config import ModelConfig


class KVCache:
    """Keys and values of every position seen so far, for a batch of independent streams.

    Attention at a new position needs the keys and values of all earlier positions, and those never
    change once computed, so generation keeps them instead of recomputing the whole context for
    every new character. The buffers are allocated once, (B, H, L, D) per layer; a step writes
    only its new slots. Row b is its own story: `lengths[b]` positions of it are filled, and rows
    need not agree, so one forward can advance stories that started at different times.

    `rows(start, stop)` is a view of some rows (same memory): feed a new prompt into one row
    while the others wait, then advance all of them together. (engine.py moves rows around.)
    """

    def __init__(self, config: ModelConfig, batch: int = 1, dtype=torch.float32, device="cpu"):
        shape = (batch, config.num_heads, config.block_size, config.head_size)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.lengths = torch.zeros(batch, dtype=torch.long)  # filled positions per row (on the CPU)
        self.block_size = config.block_size

    def rows(self, start: int, stop: int) -> KVCache:
        """Rows start..stop-1 as a cache of their own, sharing this one's memory."""
        if start == 0 and stop == len(self.lengths):
            return self
        view = object.__new__(KVCache)
        view.keys = [k[start:stop] for k in self.keys]
        view.values = [v[start:stop] for v in self.values]
        view.lengths, view.block_size = self.lengths[start:stop], self.block_size
        return view

    def advance(self, T: int) -> None:
        """Every row now holds T more positions (forward() calls this after the last layer)."""
        self.lengths.add_(T)

    def plan(self, T: int, device) -> tuple[torch.Tensor, torch.Tensor | None, tuple]:
        """Where T new positions go in every row: (positions, the attention mask, slots).

        When every row is at the same length the new positions are one slice of the buffers and
        the usual causal rule applies (mask None). Otherwise each row writes at its own positions,
        and the mask (B, 1, T, end) says which keys each new query may see: its own row's, up to
        itself. A row's unused slots past its length are never visible to it.
        """
        starts = self.lengths.tolist()
        end = max(starts) + T
        if end > self.block_size:
            raise ValueError(f"sequence of {end} exceeds block_size {self.block_size}")
        if min(starts) == end - T:  # all rows at the same length
            return torch.arange(end - T, end, device=device), None, (slice(end - T, end), end)
        positions = (self.lengths[:, None] + torch.arange(T)).to(device)  # (B, T)
        visible = torch.arange(end, device=device) <= positions[:, :, None]  # (B, T, end)
        rows = torch.arange(len(starts), device=device)[:, None]
        return positions, visible[:, None], ((rows, slice(None), positions), end)

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor, slots: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys and values (B, H, T, D) of one layer where `plan` said; return
        every row's keys and values up to the longest row, (B, H, end, D)."""
        where, end = slots
        keys, values = self.keys[layer], self.values[layer]
        if isinstance(where, slice):
            keys[:, :, where] = k
            values[:, :, where] = v
        else:  # per-row positions: index (row, all heads, position) -> (B, T, H, D)
            keys[where] = k.transpose(1, 2).to(keys.dtype)
            values[where] = v.transpose(1, 2).to(values.dtype)
        return keys[:, :, :end], values[:, :, :end]
