"""From data specs to two memory-mapped arrays of token ids, and random training windows from them.

`prepare_data` streams stories from every source, cleans each one, assigns whole stories to the
training or held-out split, and writes them as bytes straight to `train.bin` / `val.bin` with an
end-of-story id (0) before every story. Only then is the vocabulary known; a second pass rewrites
the bytes as token ids in place, a chunk at a time. Nothing holds the whole corpus in memory, so
a corpus larger than RAM works; training then reads random windows through `np.memmap`.

With `--tokenizer bpe` or `word`, the tokenizer is trained on the stories of train.bin, and both
files are re-encoded, a batch of stories at a time, as uint16 token ids. meta.json keeps the number
of characters of each split (the end-of-story marker counting as one), so losses per token can be
reported per character, comparable across tokenizers.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import UserError
from ..files import read_json, regular_file
from ..tokenizer import CharTokenizer, Tokenizer, train_tokenizer
from .clean import clean_text
from .sources import HUB_DEFAULT_MAX_CHARS, iter_stories

EOS_BYTE = 0  # cleaned text is printable ASCII, so byte 0 is free to mark story ends


@dataclass
class Splits:
    """The prepared data of a run: token ids for both splits and the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Tokenizer
    train_chars: int = 0  # characters the ids stand for (0: unknown, same as tokens)
    val_chars: int = 0

    def chars_per_token(self, split: str = "val") -> float:
        ids, chars = (self.val, self.val_chars) if split == "val" else (self.train, self.train_chars)
        return chars / len(ids) if chars else 1.0


def prepare_data(cfg: TrainConfig, data_dir: Path, log=print) -> Splits:
    """Read, clean, split and tokenize `cfg.data` (and `cfg.val_data`) into `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(256, dtype=np.int64)
    limit = cfg.max_chars
    if limit is None and "tinystories" in cfg.data:
        limit = HUB_DEFAULT_MAX_CHARS
    train_path, val_path = data_dir / "train.bin", data_dir / "val.bin"
    with open(train_path, "wb") as train_f, open(val_path, "wb") as val_f:
        n_train, n_val = _write_stories(cfg.data, limit, counts, train_f, val_f,
                                        None if cfg.val_data else cfg.val_fraction, log)
        if cfg.val_data:
            n_val = sum(_write_stories(cfg.val_data, None, counts, val_f, val_f, None, log))
    if n_train == 0:
        raise UserError(f"no text found in {', '.join(cfg.data)} after cleaning: is the data empty?")
    if n_val == 0:
        if cfg.val_data:
            raise UserError(f"no text found in --val-data {', '.join(cfg.val_data)}")
        _split_tail(train_path, val_path, cfg.val_fraction)
        log(f"only {n_train} stories: held out the last {cfg.val_fraction:.0%} of the characters")
    chars = {"train_chars": train_path.stat().st_size, "val_chars": val_path.stat().st_size}
    if cfg.tokenizer == "char":
        tokenizer = CharTokenizer(chr(b) for b in np.flatnonzero(counts) if b != EOS_BYTE)
        table = np.zeros(256, dtype=np.uint8)
        for char, index in tokenizer.stoi.items():
            table[ord(char)] = index
        for path in (train_path, val_path):
            _remap_in_place(path, table)
    else:
        log(f"training the {cfg.tokenizer} tokenizer on the training stories ...")
        tokenizer = train_tokenizer(cfg.tokenizer, _stories_in(train_path), cfg.tokenizer_vocab_size)
        for path in (train_path, val_path):
            _encode_file(path, tokenizer)
    tokens = {name: path.stat().st_size // tokenizer.dtype.itemsize
              for name, path in (("train_tokens", train_path), ("val_tokens", val_path))}
    meta = {**tokens, **chars, "tokenizer": tokenizer.kind, "train_stories": n_train,
            "val_stories": n_val, "sources": cfg.data, "val_sources": cfg.val_data}
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return load_splits(data_dir, tokenizer)


def load_splits(data_dir: Path, tokenizer: Tokenizer) -> Splits:
    """Open the prepared arrays of a run directory read-only, without loading them into memory.

    Each file is checked first, so a damaged one is a UserError naming it rather than a wrong
    score: a regular file, a whole number of ids, as many as meta.json recorded, every id inside
    the tokenizer's vocabulary.
    """
    meta = _read_meta(data_dir / "meta.json")
    damaged = "the run's prepared data is damaged: start a new run (--out) from the data"
    if meta.get("tokenizer", tokenizer.kind) != tokenizer.kind:
        raise UserError(f"{data_dir / 'meta.json'}: the data was written by a {meta['tokenizer']!r} "
                        f"tokenizer, but tokenizer.json is {tokenizer.kind!r} (copied from another "
                        f"run?): {damaged}")
    arrays = []
    for split in ("train", "val"):
        path = data_dir / f"{split}.bin"
        try:
            size = os.stat(regular_file(path, "prepared data")).st_size
        except FileNotFoundError:
            size = 0
        if size == 0:
            raise UserError(f"{path} is missing or empty: {damaged}")
        item = tokenizer.dtype.itemsize
        if size % item:
            raise UserError(f"{path} is {size} bytes, not a whole number of {item}-byte ids "
                            f"(truncated?): {damaged}")
        recorded = meta.get(f"{split}_tokens")
        if recorded is not None and recorded != size // item:
            raise UserError(f"{path} holds {size // item} ids but meta.json recorded {recorded} "
                            f"(truncated or replaced?): {damaged}")
        ids = np.memmap(path, dtype=tokenizer.dtype, mode="r")
        top = _max_id(ids)
        if top >= tokenizer.vocab_size:
            raise UserError(f"{path} holds id {top}, outside the tokenizer's {tokenizer.vocab_size} "
                            f"ids (tokenizer.json from another run?): {damaged}")
        arrays.append(ids)
    return Splits(arrays[0], arrays[1], tokenizer, meta.get("train_chars", 0), meta.get("val_chars", 0))


_META_COUNTS = ("train_tokens", "val_tokens", "train_chars", "val_chars")


def _read_meta(path: Path) -> dict:
    """meta.json of prepared data: {} when there is none (runs from before it), else checked."""
    try:
        meta = read_json(path, "prepared data")
    except FileNotFoundError:
        return {}
    if not isinstance(meta, dict):
        raise UserError(f"{path} is not a JSON object: the run's prepared data is damaged")
    for key in _META_COUNTS:
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise UserError(f"{path}: {key} must be a count (an integer >= 0), got {value!r}; "
                            "the run's prepared data is damaged")
    return meta


def _max_id(ids: np.ndarray, chunk: int = 1 << 24) -> int:
    """The largest id in a memory-mapped array, read a chunk at a time (pages released after)."""
    top = 0
    for start in range(0, len(ids), chunk):
        top = max(top, int(ids[start : start + chunk].max()))
    release_pages(ids)
    return top


def _stories_in(path: Path, chunk: int = 1 << 22):
    """The cleaned stories of a byte file written by `_write_stories` (EOS_BYTE before each)."""
    with open(path, "rb") as f:
        rest = b""
        while data := f.read(chunk):
            *complete, rest = (rest + data).split(bytes([EOS_BYTE]))
            yield from (s.decode("ascii") for s in complete if s)
        if rest:
            yield rest.decode("ascii")


def _encode_file(path: Path, tokenizer: Tokenizer, batch: int = 2000) -> None:
    """Replace the cleaned bytes of `path` by token ids: end-of-story, then the story's tokens."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        stories = []
        for story in _stories_in(path):
            stories.append(story)
            if len(stories) == batch:
                _write_ids(out, tokenizer, stories)
                stories = []
        _write_ids(out, tokenizer, stories)
    tmp.replace(path)


def _write_ids(out, tokenizer: Tokenizer, stories: list[str]) -> None:
    ids = []
    for encoded in tokenizer.encode_batch(stories):
        ids.append(tokenizer.eos_id)
        ids.extend(encoded)
    out.write(np.asarray(ids, dtype=tokenizer.dtype).tobytes())


def _write_stories(specs, limit, counts, train_f, val_f, val_fraction, log) -> tuple[int, int]:
    """Clean and write stories; every 1/val_fraction-th story goes to val. Returns story counts."""
    n_train = n_val = total = 0
    for spec in specs:
        for raw in iter_stories(spec, log=log):
            story = clean_text(raw)
            if not story:
                continue
            if limit is not None and total + len(story) > limit:
                story = story[: limit - total]
            data = bytes([EOS_BYTE]) + story.encode("ascii")
            counts += np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
            index = n_train + n_val
            # Story i goes to val when the running count of val stories, i * f, crosses an
            # integer: exactly floor(n * f) held-out stories, spread evenly through the corpus.
            to_val = val_fraction is not None and int((index + 1) * val_fraction) > int(index * val_fraction)
            (val_f if to_val else train_f).write(data)
            n_val += to_val
            n_train += not to_val
            total += len(story)
            if limit is not None and total >= limit:
                return n_train, n_val
    return n_train, n_val


def _split_tail(train_path: Path, val_path: Path, fraction: float) -> None:
    """Too few stories to hold whole ones out: move the last `fraction` of the bytes to val."""
    data = train_path.read_bytes()
    cut = int(len(data) * (1 - fraction))
    val_path.write_bytes(data[cut:])
    train_path.write_bytes(data[:cut])


def _remap_in_place(path: Path, table: np.ndarray, chunk: int = 1 << 22) -> None:
    """Rewrite the bytes of `path` through `table` (byte -> token id), 4 MB at a time.

    Plain reads and writes, not a memory map: every page of a written map stays in this process's
    resident memory until it is unmapped, which for a 200 MB corpus would be 200 MB.
    """
    with open(path, "r+b") as f:
        while True:
            start = f.tell()
            data = f.read(chunk)
            if not data:
                break
            f.seek(start)
            f.write(table[np.frombuffer(data, dtype=np.uint8)].tobytes())


def check_length(ids: np.ndarray, block_size: int, split: str) -> None:
    if len(ids) < block_size + 1:
        raise UserError(
            f"the {split} split has {len(ids)} characters, fewer than block_size + 1 = "
            f"{block_size + 1}: use more data or a smaller --block-size"
        )


def release_pages(ids: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped id array that reading has touched so far.

    Each random window faults its page in, plus up to 64 KB around it, and every page touched
    counts as this process's resident memory until it is unmapped: a long run over a 200 MB corpus
    would slowly "use" 200 MB. The pages stay in the operating system's file cache, so reading them
    again costs a page-table update, not a disk read. Called every few steps, this keeps resident
    memory independent of the corpus size (bench/speed/memory.py). A no-op for in-memory arrays and where
    madvise is missing (Windows).
    """
    mapping = getattr(ids, "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def get_batch(ids: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x = ids[i : i+T], y = ids[i+1 : i+T+1] (the next character at each place)."""
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator).tolist()
    window = np.stack([np.asarray(ids[s : s + block_size + 1], dtype=np.int64) for s in starts])
    window = torch.from_numpy(window)
    x, y = window[:, :-1], window[:, 1:]
    if torch.device(device).type != "cpu":
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y
