"""Cleaning: turn raw story text into the small, regular alphabet a character model learns best.

1. Typographic punctuation becomes ASCII: curly quotes -> straight quotes, en/em dashes -> '-',
   the ellipsis character -> '...'. The UTF-8-read-as-Latin-1 debris ("mojibake") found in some
   TinyStories exports, such as 'â€œ' for an opening quote, is repaired the same way.
2. Accented letters lose their accents (é -> e) rather than being dropped, so words stay whole.
3. Anything else outside printable ASCII is dropped (the seed's rule): emoji, stray control bytes.
4. Whitespace is normalised: tabs and odd spaces become a space, runs of spaces collapse, lines are
   stripped, and empty lines are removed, so paragraphs are separated by exactly one newline.
"""

from __future__ import annotations

import re
import unicodedata

# Mojibake first: these sequences contain characters that the single-character table would
# otherwise map on their own. Longest first so 'â€œ' wins over 'â€'.
_MOJIBAKE = [
    ("\u00e2\u20ac\u0153", '"'), ("\u00e2\u20ac\u009d", '"'), ("\u00e2\u20ac\u2122", "'"),
    ("\u00e2\u20ac\u02dc", "'"), ("\u00e2\u20ac\u201c", "-"), ("\u00e2\u20ac\u201d", "-"),
    ("\u00e2\u20ac\u00a6", "..."), ("\u00e2\u20ac", '"'),
]
_MOJIBAKE_RE = re.compile("|".join(re.escape(bad) for bad, _ in _MOJIBAKE))
_MOJIBAKE_MAP = dict(_MOJIBAKE)

_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ",
    "\t": " ", "\r": "\n", "\u00a1": "", "\u00bf": "",
})
_ALLOWED = re.compile(r"[^\n -~]")  # printable ASCII (space .. tilde) and newline
_SPACES = re.compile(r" {2,}")


def clean_text(text: str) -> str:
    """Clean one story (or any text) as described in the module docstring."""
    text = _SPACES.sub(" ", normalise_characters(text))
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


def normalise_characters(text: str) -> str:
    """Steps 1-3 only: fix punctuation, accents and odd characters but keep the spacing as it is.

    Prompts go through this, so "Once upon a time " keeps its trailing space.
    """
    text = _MOJIBAKE_RE.sub(lambda m: _MOJIBAKE_MAP[m.group(0)], text)
    text = text.translate(_PUNCTUATION)
    if not text.isascii():
        # NFKD splits 'é' into 'e' + a combining accent, which the next step drops.
        text = unicodedata.normalize("NFKD", text)
    return _ALLOWED.sub("", text)
