"""Reading the files a user hands us: regular files only, and JSON of bounded nesting.

Every path a user gives (--data, --val-data, --config, a checkpoint, the files of a run
directory) is checked with `regular_file` before anything opens it. `os.stat` never blocks,
whereas opening a FIFO waits for a writer forever and reading a device (/dev/zero, /dev/urandom)
never ends, so FIFOs, sockets and devices are refused by their file type, not by trying.

`loads_json` / `read_json` parse JSON that nests at most MAX_JSON_DEPTH levels: the nesting is
counted before json.loads runs, because Python's parser recurses once per level and a file of
100 000 `[` would otherwise end in a RecursionError. Every JSON file read from a user's disk goes
through them (runlog.py uses `too_deep` to skip such lines of metrics.jsonl).
"""

from __future__ import annotations

import json
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

from .errors import UserError

MAX_JSON_DEPTH = 100  # our own files nest at most 6 levels (a bpe tokenizer.json)
MAX_JSON_BYTES = 256 << 20  # a run's JSON files: a 65535-token tokenizer.json is a few MB

_KINDS = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a directory")]
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def special_kind(path: str | Path) -> str | None:
    """What `path` is when it is not a regular file ('a FIFO (named pipe)', 'a socket', ...);
    None for a regular file. Uses os.stat (following links), so it never opens or blocks.
    A path that does not exist raises FileNotFoundError, for the caller to word."""
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def regular_file(path: str | Path, what: str = "") -> Path:
    """`path` as a Path when it is a regular file; otherwise a UserError naming it and what it
    is. `what` says which file it is ('data file', 'config file'). Missing files raise
    FileNotFoundError, so each caller keeps its own "not found" message."""
    path = Path(path)
    try:
        kind = special_kind(path)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a link loop, a folder on the way that cannot be searched, ...
        raise UserError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if kind is not None:
        label = f"{what} {path}" if what else str(path)
        raise UserError(f"{label} is {kind}, not a regular file: give a regular file "
                        "(FIFOs, sockets and devices are never read)")
    return path


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Does the JSON text nest arrays/objects more than `limit` levels (brackets inside strings
    do not count)? Cheap for ordinary text: only text with more than `limit` opening brackets
    is scanned."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0) > limit


def loads_json(text: str, where: str, positions: bool = True) -> Any:
    """json.loads with bounded nesting; a UserError starting with `where` for invalid JSON
    (saying at which line, unless `positions` is False: `where` names the line already)."""
    if too_deep(text):
        raise UserError(f"{where} nests JSON more than {MAX_JSON_DEPTH} levels deep; "
                        "it is not a file this program wrote or reads")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f" at line {exc.lineno}" if positions else ""
        raise UserError(f"{where} is not valid JSON ({exc.msg}{at})") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UserError(f"{where} is not valid JSON here ({str(exc).split(':')[0]})") from None
    except RecursionError:  # belt and braces: too_deep should have caught it
        raise UserError(f"{where} nests JSON too deeply") from None


def read_json(path: str | Path, what: str = "", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A regular file's JSON (see loads_json), at most `max_bytes` long. Missing:
    FileNotFoundError, for the caller."""
    path = regular_file(path, what)
    size = os.stat(path).st_size
    if size > max_bytes:
        raise UserError(f"{path} is {size / 1e6:.0f} MB, more than the {max_bytes / 1e6:.0f} MB such "
                        "a file can be; it is not a file this program wrote")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text (is it a binary file?)") from None
    except PermissionError:
        raise UserError(f"{path} cannot be read: permission denied") from None
    return loads_json(text, str(path))
