"""The prompt: from what the user typed to the ids a story starts from.

`prompt_text` is the one place a prompt is normalised (typographic punctuation to ASCII, as the
training text was); a stream keeps the result as `Stream.prompt`, and everything that shows a
prompt back to the user shows that. `prompt_ids` puts the end-of-story token in front: the model
sees "a new story starts here, like this".

A prompt that ends in a space is a trap for subword and word tokenizers: their tokens carry the
space in front of a word (" little"), so a lone trailing space is a token the model almost never
saw followed by a word, and it steers the story towards rare words. A stream holds such a space
back, feeds the prompt without it, and lets the first new token be only one that starts with it
(a small form of "token healing"); the text the user sees is the same.
"""

from __future__ import annotations

import unicodedata

import torch

from .data import normalise_characters
from .data.clean import _MOJIBAKE_RE  # repaired, never refused: 'â€œ' is a quote
from .errors import UserError
from .tokenizer import Tokenizer


def prompt_text(prompt: str) -> str:
    """The prompt as the model reads it: typographic punctuation mapped to ASCII like the training
    text (data/clean.py), its spacing kept. A stream keeps this as `Stream.prompt`.

    Cleaning training text drops what it cannot map (emoji, other scripts); a prompt is what the
    user asked for, so a character that cleaning would drop is a UserError naming it, as for a
    character the vocabulary lacks. Accents (é -> e), typographic punctuation and invisible
    format characters (zero-width joiners) are still mapped or dropped quietly."""
    if not isinstance(prompt, str):
        raise UserError(f"a prompt is text, got {type(prompt).__name__}")
    text = normalise_characters(prompt)
    lost = [c for c in dict.fromkeys(_MOJIBAKE_RE.sub("", prompt)) if _dropped(c)]
    if lost:
        shown = ", ".join(repr(c) for c in lost[:10]) + (", ..." if len(lost) > 10 else "")
        raise UserError(f"the model's vocabulary has no {shown}: remove or replace "
                        f"{'this character' if len(lost) == 1 else 'these characters'}")
    return text


def _dropped(char: str) -> bool:
    """Would cleaning drop `char` although it carries meaning (a letter, digit, symbol, control
    or unassigned character, rather than an accent, punctuation or an invisible format mark)?"""
    if normalise_characters(char):
        return False
    return unicodedata.category(char)[0] in "LNSC" and unicodedata.category(char) != "Cf"


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """End-of-story then the prompt (through `prompt_text`): the model sees 'a new story starts
    here, like this'. A character the vocabulary lacks is an error that names it (UserError)."""
    return encode_prompt(tokenizer, prompt_text(prompt))


def encode_prompt(tokenizer: Tokenizer, text: str) -> list[int]:
    """End-of-story then `text`, which has been through `prompt_text` already."""
    return [tokenizer.eos_id] + tokenizer.encode(text)


def held_back_space(tokenizer: Tokenizer, prompt: str) -> tuple[str, torch.Tensor | None]:
    """For a subword or word tokenizer and a prompt ending in spaces: (those spaces, a mask of
    the tokens whose text starts with them). ("", None) when there is nothing to hold back, for
    a character model, or when no token starts with those spaces."""
    held = prompt[len(prompt.rstrip(" ")):]
    if tokenizer.kind == "char" or not held:
        return "", None
    allowed = torch.tensor([tokenizer.piece(i).startswith(held) for i in range(tokenizer.vocab_size)])
    return (held, allowed) if bool(allowed.any()) else ("", None)
