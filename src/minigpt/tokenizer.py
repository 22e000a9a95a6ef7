"""Character tokenizer: every character is one token, plus one end-of-story token.

The vocabulary is the sorted set of characters seen in the (cleaned) training text. Id 0 is reserved
for the end-of-story symbol, written `<|endoftext|>` as in the TinyStories files, so the model can
learn where a story ends and generation can stop there. Because the symbol has its own id, ordinary
text can never produce it, even text that happens to contain the characters "<|endoftext|>".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import UserError

EOS_TEXT = "<|endoftext|>"


class CharTokenizer:
    """Maps text <-> integer ids, one id per character; id 0 is end-of-story."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = sorted(set(chars))
        if any(len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary holds single characters only")
        self.chars = chars
        self.eos_id = 0
        self.stoi = {c: i + 1 for i, c in enumerate(chars)}
        self.itos = {i + 1: c for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(set(text))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id (uint8 for characters)."""
        return np.dtype(np.uint8) if self.vocab_size <= 256 else np.dtype(np.uint16)

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
        return "".join(EOS_TEXT if i == self.eos_id else self.itos[int(i)] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "eos": EOS_TEXT, "eos_id": self.eos_id, "chars": self.chars}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        if data.get("kind") != cls.kind or not isinstance(data.get("chars"), list):
            raise UserError(f"tokenizer.json is not a character tokenizer (kind={data.get('kind')!r})")
        return cls(data["chars"])


def load_tokenizer(path: str | Path) -> CharTokenizer:
    """Read tokenizer.json from a run directory."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing: is this a run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); the run directory is damaged") from None
    return CharTokenizer.from_dict(data)
