"""The generation engine: many stories at once, one batched forward per step.

Writing one character costs a forward pass that mostly reads the model's weights; reading them
for 16 stories at once costs little more than for one. So the engine keeps a set of live
*streams*, each with its own prompt, sampling settings, random generator, stop rule and length
limit, and every `step()` advances all of them by one token with a single forward over one
shared `KVCache` (row i of the cache is stream i):

    1. admit waiting streams into free rows (at most `max_batch` live at once)
    2. for a stream whose context outgrew block_size, slide its window (below)
    3. prefill: feed any of a stream's tokens that are not in the cache yet, except its last,
       into its own row (a new prompt, or the window after a slide)
    4. decode: feed every stream's last token in one forward; each row sits at its own position
    5. sample every row with its own settings and generator; finished streams leave

Streams join and leave between steps (continuous batching), and a stream's story depends only on
its own prompt, settings and seed, never on what else is in the batch (tests/test_engine.py).

How a prompt becomes the ids a stream starts from, and why a trailing space is held back for
subword and word tokenizers, is prompt.py.

Positions stop at block_size (learned or rotary: docs/architecture.md). Past that the context slides:
it restarts from the last 3/4 of a block, and the recompute path (`use_cache=False`, which re-runs
the whole window every step) follows exactly the same rule, so both write the same story.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable

import torch

from .config import SampleConfig
from .errors import UserError
from .fastpath import decode_step
from .model import KVCache, MiniGPT
from .prompt import encode_prompt, held_back_space, prompt_text
from .sampling import group_rows, make_generator, sample_rows
from .tokenizer import Tokenizer


class Stream:
    """One story in the engine.

    `seq` is the whole story so far (prompt included) as token ids; the model sees the window
    seq[start:], of which seq[start:fed] is already in the stream's cache row. `prompt` is the
    prompt's text as the model reads it (`prompt_text`; '' for a stream made from ids). `tokens`
    and `pieces` are what it wrote (ids, and their text when the engine has a tokenizer). `finished`
    becomes "length", "end of story", "cancelled" or "error" (a server's step raised).
    `notify(kind, value)`, if set, is called by the engine's thread with ("admitted", None),
    ("piece", text) and ("done", reason).
    """

    def __init__(self, ids: list[int], cfg: SampleConfig, generator: torch.Generator,
                 eos_id: int | None = None, first_allowed: torch.Tensor | None = None, held: str = "",
                 prompt: str = ""):
        self.seq = list(ids)
        self.prompt = prompt
        self.cfg = cfg
        self.generator = generator
        self.eos_id = eos_id
        self.first_allowed = first_allowed
        self.held = held
        self.limit = cfg.max_new_chars if cfg.max_new_chars is not None else cfg.max_new_tokens
        self.chars_left = cfg.max_new_chars
        self.tokens: list[int] = []
        self.pieces: list[str] = []
        self.start = self.fed = 0
        self.finished: str | None = None
        self.cancelled = False  # set from any thread; the engine drops the stream at its next step
        self.notify: Callable[[str, object], None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def _tell(self, kind: str, value=None) -> None:
        if self.notify is not None:
            self.notify(kind, value)


class Engine:
    """Live streams advanced together, one batched forward per step. See the module docstring.

    Single-threaded use: `add()` streams, then `run()` (or `step()` until `idle`). A server runs
    `serve_forever()` in one thread that owns the model, and calls `add()` and `cancel()` from
    others: those two only touch the waiting queue and flags, under a lock.
    """

    def __init__(self, model: MiniGPT, tokenizer: Tokenizer | None = None, max_batch: int = 16,
                 max_waiting: int | None = None, use_cache: bool = True):
        if max_batch < 1:
            raise UserError(f"max_batch must be a positive integer, got {max_batch}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_waiting = max_waiting  # None: no bound (a program's own batch); a server sets one
        self.use_cache = use_cache
        param = next(model.parameters())
        self.device = param.device
        self.cache = KVCache(model.config, max_batch, param.dtype, param.device) if use_cache else None
        # The decode step (one new position per row) through the traced forward (fastpath.py),
        # or forward() itself when the model is not in a state the trace covers.
        self._decode = (decode_step(self.model) if use_cache else None) or (
            lambda ids, cache: self.model(ids, cache=cache)[0])
        self.live: list[Stream] = []  # live[i] owns row i of the cache
        self.waiting: deque[Stream] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._changed = False  # a stream was cancelled since the last step
        self._first_allowed = False  # a live stream still has a first-token mask to apply
        self._to_prefill = False  # a stream joined or slid: it has tokens to feed before its last
        self._groups: list[tuple[SampleConfig, list[int]]] | None = None  # rows by settings

    # ---- making streams -------------------------------------------------------------------

    def stream(self, prompt: str = "", cfg: SampleConfig | None = None, seed: int | None = None) -> Stream:
        """A stream for a text prompt (needs the engine's tokenizer). Bad settings or an unknown
        prompt character are a UserError here, before the stream can join."""
        if self.tokenizer is None:
            raise ValueError("this engine has no tokenizer: make streams with Stream(ids, ...)")
        cfg = cfg or SampleConfig()
        cfg.validate()
        text = prompt_text(prompt)
        held, first_allowed = held_back_space(self.tokenizer, text)
        ids = encode_prompt(self.tokenizer, text[: len(text) - len(held)])
        seed = cfg.seed if seed is None else seed
        return Stream(ids, cfg, make_generator(seed, self.device), self.tokenizer.eos_id,
                      first_allowed, held, text)

    def add(self, stream: Stream) -> Stream:
        """Queue a stream; it joins the batch at the next step with a free row. Raises `Full`
        when the waiting queue is at its bound."""
        with self._lock:
            if self.max_waiting is not None and len(self.waiting) >= self.max_waiting:
                raise Full(f"{len(self.live)} stories are being written and {len(self.waiting)} wait")
            self.waiting.append(stream)
        self._wake.set()
        return stream

    def cancel(self, stream: Stream) -> None:
        """Stop a stream, waiting or live; its row is freed at the next step."""
        stream.cancelled = True
        self._changed = True
        self._wake.set()

    @property
    def idle(self) -> bool:
        return not self.live and not self.waiting

    # ---- the step --------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> bool:
        """Advance every live stream by one token. Returns False when there was nothing to do."""
        if self.waiting or self._changed:
            self._admit()
        if not self.live:
            return False
        logits = self._logits()
        if self._first_allowed:
            for row, s in enumerate(self.live):
                if s.first_allowed is not None:  # the held-back space: tokens that start with it
                    logits[row].masked_fill_(~s.first_allowed.to(logits.device), float("-inf"))
                    s.first_allowed = None
            self._first_allowed = False
        done = []
        for row, (s, token) in enumerate(zip(self.live, self._sample(logits))):
            self._take(s, token)
            if s.finished:
                done.append(row)
        if done:
            self._leave(done)
        return True

    def run(self, streams: Iterable[Stream] = ()) -> list[Stream]:
        """Add `streams`, then step until every stream, waiting or live, has finished; return them."""
        streams = [self.add(s) for s in streams]
        while self.step() or self.waiting:
            pass
        return streams

    def serve_forever(self, stop: threading.Event) -> None:
        """The server's engine loop: step while there is work, sleep until there is."""
        while not stop.is_set():
            try:
                worked = self.step()
            except Exception as exc:  # a bug: end the stories of this batch, keep serving
                self._fail(exc)
                continue
            if not worked:
                self._wake.wait(0.5)
                self._wake.clear()

    def _fail(self, exc: Exception) -> None:
        """End every live stream with finished = "error" after a step raised; the engine stays
        usable for the streams that wait and those that come later."""
        print(f"minigpt engine: a step failed ({type(exc).__name__}: {exc}); "
              f"{len(self.live)} stories ended", file=sys.stderr, flush=True)
        for s in self.live:
            s.finished = "error"
        self._leave(list(range(len(self.live))))

    def _admit(self) -> None:
        with self._lock:
            self._changed = False
            for s in self.live:
                if s.cancelled:
                    s.finished = "cancelled"
            self._leave([row for row, s in enumerate(self.live) if s.finished])
            while self.waiting and len(self.live) < self.max_batch:
                s = self.waiting.popleft()
                if s.cancelled:
                    s.finished = "cancelled"
                    s._tell("done", s.finished)
                    continue
                s.start = s.fed = max(0, len(s.seq) - self.model.config.block_size)
                if self.cache is not None:
                    self.cache.lengths[len(self.live)] = 0
                self.live.append(s)
                self._groups = None
                self._to_prefill = True
                self._first_allowed |= s.first_allowed is not None
                s._tell("admitted")
                if s.limit == 0:
                    s.finished = "length"
            self._leave([row for row, s in enumerate(self.live) if s.finished])

    def _logits(self) -> torch.Tensor:
        """Logits (n, V) for the position after every live stream's last token."""
        block = self.model.config.block_size
        keep = max(1, (3 * block) // 4)  # context kept when the window slides
        for row, s in enumerate(self.live):
            if len(s.seq) - s.start > block:  # slide: positions restart, so the cache row does too
                s.start = s.fed = len(s.seq) - keep
                self._to_prefill = True
                if self.cache is not None:
                    self.cache.lengths[row] = 0
        if self.cache is None:  # the reference path: re-run each whole window
            rows = [self.model(self._ids([s.seq[s.start:]]))[0][:, -1] for s in self.live]
            return torch.cat(rows)
        if self._to_prefill:
            self._prefill()
            self._to_prefill = False
        logits = self._decode(self._ids([[s.seq[-1]] for s in self.live]),
                              self.cache.rows(0, len(self.live)))[:, -1]
        for s in self.live:
            s.fed = len(s.seq)
        return logits

    def _prefill(self) -> None:
        """Feed every stream's uncached tokens but the last into its row. Rows with the same
        number of tokens to feed (streams whose windows slid together) share one forward."""
        by_length: dict[int, list[int]] = {}
        for row, s in enumerate(self.live):
            if len(s.seq) - s.fed > 1:
                by_length.setdefault(len(s.seq) - s.fed - 1, []).append(row)
        for rows in by_length.values():
            ids = self._ids([self.live[r].seq[self.live[r].fed:-1] for r in rows])
            if len(rows) == 1:  # one row: straight into its place in the cache
                self.model(ids, cache=self.cache.rows(rows[0], rows[0] + 1))
                continue
            # Several rows, anywhere in the batch: a scratch cache, then each row's new part
            # copied into its place (every such row starts at the same length).
            start = int(self.cache.lengths[rows[0]])
            scratch = _scratch(self.cache, rows)
            self.model(ids, cache=scratch)
            _copy_rows(scratch, self.cache, rows, start, start + ids.size(1))

    def _ids(self, rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(rows, device=self.device)

    def _sample(self, logits: torch.Tensor) -> list[int]:
        """One token per row, each with its own settings and generator (sampling.sample_rows)."""
        if self._groups is None:  # rows by settings, kept until a stream joins or leaves
            self._groups = group_rows([s.cfg for s in self.live])
            self._generators = [s.generator for s in self.live]
        return sample_rows(logits, self._groups, self._generators).tolist()

    def _take(self, s: Stream, token: int) -> None:
        """Append a sampled token to its stream (or end the stream) and tell its listener."""
        if token == s.eos_id and s.cfg.stop_at_eos:
            s.finished = "end of story"
            return
        s.seq.append(token)
        s.tokens.append(token)
        if self.tokenizer is not None:
            piece = self.tokenizer.piece(token)
            if s.held:  # the first token starts with the held-back space, already in the prompt
                piece, s.held = piece[len(s.held):], ""
            if s.chars_left is not None:
                piece = piece[: s.chars_left]
                s.chars_left -= len(piece)
            s.pieces.append(piece)
            s._tell("piece", piece)
        if s.chars_left == 0 or len(s.tokens) >= s.limit:
            s.finished = "length"

    def _leave(self, rows: list[int]) -> None:
        """Remove finished streams; the last live row moves into each freed row."""
        for row in sorted(rows, reverse=True):
            s = self.live[row]
            last = len(self.live) - 1
            if row != last:
                self.live[row] = self.live[last]
                if self.cache is not None:
                    _move_row(self.cache, last, row)
            self.live.pop()
            self._groups = None
            s._tell("done", s.finished)


def _scratch(cache: KVCache, rows: list[int]) -> KVCache:
    """A cache holding copies of some rows of `cache` (not sharing memory), with their lengths:
    feed them together, then copy the new part back with _copy_rows."""
    index = torch.tensor(rows, device=cache.keys[0].device)
    n = int(cache.lengths[rows].max())

    def copy(t: torch.Tensor) -> torch.Tensor:
        out = torch.empty((len(rows), *t.shape[1:]), dtype=t.dtype, device=t.device)
        out[:, :, :n] = t[index, :, :n]
        return out
    scratch = object.__new__(KVCache)
    scratch.keys, scratch.values = [copy(k) for k in cache.keys], [copy(v) for v in cache.values]
    scratch.lengths, scratch.block_size = cache.lengths[rows].clone(), cache.block_size
    return scratch


def _copy_rows(source: KVCache, target: KVCache, rows: list[int], start: int, end: int) -> None:
    """Positions start..end-1 of `source`'s rows 0, 1, ... into `target`'s `rows`, which then
    hold `end` positions."""
    index = torch.tensor(rows, device=target.keys[0].device)
    for mine, theirs in zip(target.keys + target.values, source.keys + source.values):
        mine[index, :, start:end] = theirs[:, :, start:end]
    target.lengths[index] = end


def _move_row(cache: KVCache, source: int, target: int) -> None:
    """Row `source` (its filled positions) into row `target`: a stream changes rows."""
    n = int(cache.lengths[source])
    for t in cache.keys + cache.values:
        t[target, :, :n] = t[source, :, :n]
    cache.lengths[target] = n


class Full(Exception):
    """The engine's waiting queue is at its bound."""
