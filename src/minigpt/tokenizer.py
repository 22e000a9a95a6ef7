"""Tokenizers: text <-> integer ids. Three kinds behind one small interface.

- `char` (the default, the seed's): every character is one token. The vocabulary is the sorted
  set of characters in the cleaned training text.
- `bpe`: byte-level byte-pair encoding, trained on the training split with the HuggingFace
  `tokenizers` library. It starts from the 256 byte values and merges the most frequent
  neighbouring pairs until the vocabulary has `vocab_size` entries, so frequent words (" the",
  " said") become one token and any text at all can still be written.
- `word`: words, numbers and single punctuation marks as tokens, each keeping the space before it
  (" cat" and "cat" are different tokens), and newlines as tokens. Tokens seen fewer than
  `WORD_MIN_COUNT` times, and all but the `vocab_size` most frequent, become one `<unk>` token.

Shared rules:
- Id 0 is the end-of-story token, written `<|endoftext|>` as in the TinyStories files, so the model
  learns where a story ends and generation can stop there. It has its own id, so ordinary text can
  never produce it, even text that contains the characters "<|endoftext|>".
- `decode(encode(text)) == text` for the cleaned TinyStories text the models train on: exactly for
  `char` and `bpe`; for `word` too, except that a word outside the vocabulary comes back as `<unk>`
  (with its leading space kept). Cleaning (data/clean.py) has already made whitespace regular:
  single spaces, and single newlines between paragraphs.
- `piece(id)` is the text of one token, for streaming and labels; `dtype` is the smallest unsigned
  integer type that holds every id, for the memory-mapped id files.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import read_json

EOS_TEXT = "<|endoftext|>"
UNK_TEXT = "<unk>"
KINDS = ("char", "bpe", "word")
DEFAULT_VOCAB = {"bpe": 512, "word": 4096}  # chosen by bench/quality/tokenizer_compare.py (README table)
WORD_MIN_COUNT = 2  # a word seen once in training is left to <unk>, so the model learns <unk>
MAX_VOCAB = 65535  # ids are stored as uint16


class _Base:
    kind = ""
    eos_id = 0

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.vocab_size <= 256 else np.dtype(np.uint16)

    def unknown(self, text: str) -> list[str]:
        """Pieces of `text` the tokenizer cannot encode (only `char` refuses anything)."""
        return []

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")


class CharTokenizer(_Base):
    """One id per character; id 0 is end-of-story."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = sorted(set(chars))
        if any(len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary holds single characters only")
        self.chars = chars
        self.stoi = {c: i + 1 for i, c in enumerate(chars)}
        self.itos = {i + 1: c for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(set(text))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.stoi))

    def encode(self, text: str) -> list[int]:
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10])
            raise UserError(
                f"the model's vocabulary has no {shown}: remove or replace "
                f"{'this character' if len(missing) == 1 else 'these characters'}"
            )
        return [self.stoi[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.piece(i) for i in ids)

    def piece(self, token: int) -> str:
        return EOS_TEXT if token == self.eos_id else self.itos[int(token)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "eos": EOS_TEXT, "eos_id": self.eos_id, "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict, where: str = "tokenizer.json") -> CharTokenizer:
        chars = _string_list(data, "chars", where, "a character tokenizer")
        bad = next((c for c in chars if len(c) != 1 or c == "\x00"), None)
        if bad is not None:
            raise UserError(f"{where}: \"chars\" must hold single characters (not NUL), got {bad!r}; "
                            "the file is damaged")
        if len(chars) + 1 > MAX_VOCAB:
            raise UserError(f"{where}: \"chars\" holds {len(chars)} characters, more than "
                            f"{MAX_VOCAB - 1}; the file is damaged")
        return cls(chars)


class BPETokenizer(_Base):
    """Byte-level BPE from HuggingFace `tokenizers`; our id = its id + 1, so 0 stays end-of-story."""

    kind = "bpe"

    def __init__(self, hf):
        self.hf = hf
        self._pieces = [EOS_TEXT] + [hf.decode([i]) for i in range(hf.get_vocab_size())]

    @classmethod
    def train(cls, stories: Iterable[str], vocab_size: int) -> BPETokenizer:
        if not 257 <= vocab_size <= MAX_VOCAB:
            raise UserError(f"--vocab-size for bpe must be between 257 (256 bytes + end-of-story) "
                            f"and {MAX_VOCAB}, got {vocab_size}")
        tk = _import_tokenizers()
        hf = tk.Tokenizer(tk.models.BPE())
        hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size - 1, show_progress=False,
                                         initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(stories, trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self.hf.encode(text, add_special_tokens=False).ids]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[i + 1 for i in e.ids] for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        out, run = [], []
        for i in ids:
            if int(i) == self.eos_id:
                out += [self.hf.decode(run), EOS_TEXT] if run else [EOS_TEXT]
                run = []
            else:
                run.append(int(i) - 1)
        if run:
            out.append(self.hf.decode(run))
        return "".join(out)

    def piece(self, token: int) -> str:
        return self._pieces[int(token)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "eos": EOS_TEXT, "eos_id": self.eos_id,
                "huggingface": json.loads(self.hf.to_str())}

    @classmethod
    def from_dict(cls, data: dict, where: str = "tokenizer.json") -> BPETokenizer:
        hf = data.get("huggingface")
        model = hf.get("model") if isinstance(hf, dict) else None
        if not isinstance(model, dict):
            raise UserError(f"{where}: a bpe tokenizer needs its \"huggingface\" object with a "
                            "\"model\"; the file is damaged")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise UserError(f"{where}: huggingface.model.vocab must be an object of token: id, got "
                            f"{_short(vocab)}; the file is damaged")
        ids = list(vocab.values())
        if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise UserError(f"{where}: huggingface.model.vocab ids must be integers; the file is damaged")
        if sorted(ids) != list(range(len(ids))) or len(ids) + 1 > MAX_VOCAB:
            raise UserError(f"{where}: huggingface.model.vocab ids must be 0..{len(ids) - 1}, each once "
                            f"(at most {MAX_VOCAB - 1} tokens); the file is damaged")
        tk = _import_tokenizers()
        try:
            return cls(tk.Tokenizer.from_str(json.dumps(hf)))
        except Exception as exc:  # the Rust library raises plain Exception for any bad field
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{where}: the bpe tokenizer cannot be read ({first}); "
                            "the file is damaged") from None


# A word: a run of letters. The word tokenizer's words, and the words that `minigpt report`
# counts and a model's words.txt lists (report.py, pretrained.py).
WORD = re.compile(r"[A-Za-z]+")
# A word (with the space before it), a number, one other mark (with its space), or one whitespace
# character. Every character of any text falls in exactly one match, so joining them gives it back.
_WORD_RE = re.compile(rf" ?{WORD.pattern}| ?[0-9]+| ?[^A-Za-z0-9\s]|\s")


class WordTokenizer(_Base):
    """Words and punctuation as tokens; 0 = end-of-story, 1 = <unk>, then by frequency."""

    kind = "word"
    unk_id = 1

    def __init__(self, words: list[str]):
        self.words = [EOS_TEXT, UNK_TEXT] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.words) if i > self.unk_id}

    @classmethod
    def train(cls, stories: Iterable[str], vocab_size: int,
              min_count: int = WORD_MIN_COUNT) -> WordTokenizer:
        if not 4 <= vocab_size <= MAX_VOCAB:
            raise UserError(f"--vocab-size for word must be between 4 and {MAX_VOCAB}, got {vocab_size}")
        counts = Counter()
        for story in stories:
            counts.update(_WORD_RE.findall(story))
        # " " and "\n" always: an unknown word keeps its space, so spacing survives <unk>.
        words = [" ", "\n"]
        ranked = sorted((w for w, n in counts.items() if n >= min_count and w not in words),
                        key=lambda w: (-counts[w], w))
        return cls(words + ranked[: vocab_size - 4])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        ids = []
        for token in _WORD_RE.findall(text):
            index = self.stoi.get(token)
            if index is not None:
                ids.append(index)
            elif token.startswith(" ") and len(token) > 1:
                ids += [self.stoi[" "], self.stoi.get(token[1:], self.unk_id)]
            else:
                ids.append(self.unk_id)
        return ids

    def unknown_words(self, text: str) -> list[str]:
        """Tokens of `text` that would become <unk>, in order of first appearance."""
        return list(dict.fromkeys(
            t.strip() for t in _WORD_RE.findall(text)
            if t not in self.stoi and not (t.startswith(" ") and t[1:] in self.stoi)))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.words[int(i)] for i in ids)

    def piece(self, token: int) -> str:
        return self.words[int(token)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "eos": EOS_TEXT, "eos_id": self.eos_id, "unk": UNK_TEXT,
                "unk_id": self.unk_id, "words": self.words[2:]}

    @classmethod
    def from_dict(cls, data: dict, where: str = "tokenizer.json") -> WordTokenizer:
        words = _string_list(data, "words", where, "a word tokenizer")
        for required in (" ", "\n"):
            if required not in words:
                raise UserError(f"{where}: \"words\" lacks {required!r}, which every word "
                                "vocabulary holds; the file is damaged")
        bad = next((w for w in words if not w or w in (EOS_TEXT, UNK_TEXT)), None)
        if bad is not None:
            raise UserError(f"{where}: \"words\" holds {bad!r}, which is not a word; the file is damaged")
        if len(words) + 2 > MAX_VOCAB:
            raise UserError(f"{where}: \"words\" holds {len(words)} words, more than {MAX_VOCAB - 2}; "
                            "the file is damaged")
        return cls(words)


Tokenizer = CharTokenizer | BPETokenizer | WordTokenizer
_CLASSES = {cls.kind: cls for cls in (CharTokenizer, BPETokenizer, WordTokenizer)}


def train_tokenizer(kind: str, stories: Iterable[str], vocab_size: int | None = None) -> Tokenizer:
    """A `bpe` or `word` tokenizer trained on `stories` (char vocabularies come from counts)."""
    if kind not in ("bpe", "word"):
        raise UserError(f"tokenizer must be one of {', '.join(KINDS)}, got {kind!r}")
    return _CLASSES[kind].train(stories, vocab_size or DEFAULT_VOCAB[kind])


def tokenizer_from_dict(data: dict, where: str = "tokenizer.json") -> Tokenizer:
    """The tokenizer a dict from tokenizer.json describes; every field is checked, and anything
    odd (wrong types, duplicates, ids out of range) is a UserError starting with `where`."""
    if not isinstance(data, dict):
        raise UserError(f"{where} must hold a JSON object, got {_short(data)}; the file is damaged")
    kind = data.get("kind")
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UserError(f"{where} has an unknown kind {_short(kind)} (expected one of {', '.join(KINDS)})")
    for key, expected in (("eos_id", 0), ("unk_id", getattr(cls, "unk_id", None))):
        if key in data and expected is not None and (type(data[key]) is not int or data[key] != expected):
            raise UserError(f"{where}: {key} must be {expected}, got {_short(data[key])}; "
                            "the file is damaged")
    return cls.from_dict(data, where)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read tokenizer.json from a run directory (a regular file of bounded JSON, checked)."""
    try:
        data = read_json(path, "tokenizer")
    except FileNotFoundError:
        raise UserError(f"{path} is missing: is this a run directory?") from None
    return tokenizer_from_dict(data, str(path))


def _string_list(data: dict, key: str, where: str, who: str) -> list[str]:
    """data[key] as a list of distinct strings, else a UserError naming the file and field."""
    value = data.get(key)
    if not isinstance(value, list):
        raise UserError(f"{where}: {who} needs a \"{key}\" list, got {_short(value)}; the file is damaged")
    odd = [v for v in value if not isinstance(v, str)][:1]
    if odd:
        raise UserError(f"{where}: \"{key}\" must hold strings only, got {_short(odd[0])}; "
                        "the file is damaged")
    seen: set[str] = set()
    twice = next((v for v in value if v in seen or seen.add(v)), None)
    if twice is not None:
        raise UserError(f"{where}: \"{key}\" holds {twice!r} twice; the file is damaged")
    return value


def _short(value) -> str:
    """A value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _import_tokenizers():
    try:
        import tokenizers
        import tokenizers.decoders
        import tokenizers.models
        import tokenizers.pre_tokenizers
        import tokenizers.trainers
    except ImportError:
        raise UserError("the bpe tokenizer needs the `tokenizers` package: "
                        "pip install tokenizers (or use --tokenizer char)") from None
    return tokenizers
