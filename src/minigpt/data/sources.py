"""Where stories come from: the HuggingFace hub, local files, directories, or the bundled corpus.

`iter_stories(spec)` turns one `--data` value into a stream of raw stories (strings). Everything is
read lazily, so a file larger than memory streams through. Formats:

- `tinystories`: the HuggingFace dataset roneneldan/TinyStories, streamed with `datasets`. When the
  hub cannot be reached (checked in about a second) we say so and use the bundled corpus instead.
- `bundled`: the corpus shipped inside the package (see minigpt/corpus).
- `*.txt`: stories separated by `<|endoftext|>` lines; a file without that marker is split at blank
  lines instead, each block counting as one story.
- `*.jsonl`: one JSON object per line with a "text" field (or a bare JSON string per line).
- `*.json`: a list of such objects or strings.
- `*.parquet`: a table with a "text" column, read in batches.
- a directory: every supported file below it, in sorted order (FIFOs, sockets and devices
  inside it are skipped).

Only regular files are read: a FIFO, socket or device given as a file is refused before it is
opened (files.regular_file), and JSON nesting is bounded (files.loads_json).

Any local spec (file, directory, `bundled`) may end in a story range, `SPEC@START:END`, to take a
slice of its stories, Python-style: `stories.txt@:90%` is the first 90% of the stories,
`stories.txt@90%:` the last 10% (so the two never overlap), `stories.txt@:1000` the first 1000.
Percentages are of the story count, rounded down.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..files import loads_json, regular_file
from ..tokenizer import EOS_TEXT

HUB_DATASET = "roneneldan/TinyStories"
HUB_HOST = "huggingface.co"
HUB_DEFAULT_MAX_CHARS = 1_000_000  # the seed's default: enough for a first model in minutes
SUPPORTED = (".txt", ".jsonl", ".json", ".parquet")


def hub_reachable(timeout: float = 2.0) -> bool:
    """Can we open a TCP connection to the hub? Honours HF_HUB_OFFLINE / HF_DATASETS_OFFLINE.

    The `datasets` library would retry for ~25 s before giving up; one socket with a short timeout
    tells us the same thing at once.
    """
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


_RANGE = re.compile(r"^(.*)@(\d+%?)?:(\d+%?)?$")


def split_range(spec: str) -> tuple[str, str | None, str | None] | None:
    """`'a.txt@:90%'` -> `('a.txt', None, '90%')`; None when the spec carries no story range."""
    match = _RANGE.match(spec)
    if match is None or Path(spec).expanduser().exists():  # a real file name may contain '@'
        return None
    base, start, end = match.groups()
    for bound in (start, end):
        if bound and bound.endswith("%") and int(bound[:-1]) > 100:
            raise UserError(f"story range in {spec!r}: {bound} is over 100%")
    return base, start, end


def _bound(value: str | None, total: int, default: int) -> int:
    if value is None:
        return default
    if value.endswith("%"):
        return total * int(value[:-1]) // 100
    return min(int(value), total)


def iter_stories(spec: str, log=print) -> Iterator[str]:
    """Raw (uncleaned) stories from one data spec, see the module docstring."""
    ranged = split_range(spec)
    if ranged is not None:
        base, start, end = ranged
        if base == "tinystories":
            raise UserError("a story range (@START:END) needs a local file, directory or 'bundled', "
                            "not the streamed hub dataset")
        stories = [s for s in iter_stories(base, log) if s.strip()]
        total = len(stories)
        yield from stories[_bound(start, total, 0):_bound(end, total, total)]
        return
    if spec == "tinystories":
        yield from _hub_stories(log)
    elif spec == "bundled":
        yield from _bundled_stories()
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise UserError(
                f"data {spec!r} not found: give 'tinystories', 'bundled', a file "
                f"({', '.join(SUPPORTED)}) or a directory of them"
            )
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED)
            if not files:
                raise UserError(f"directory {path} holds no {', '.join(SUPPORTED)} files")
            for file in files:
                yield from _file_stories(file)
        else:
            yield from _file_stories(path)


def _hub_stories(log) -> Iterator[str]:
    if not hub_reachable():
        log(f"offline: cannot reach {HUB_HOST}, training on the bundled corpus instead")
        yield from _bundled_stories()
        return
    try:
        from datasets import load_dataset  # heavy import: only on this path
    except ImportError:
        log("the `datasets` package is not installed, training on the bundled corpus instead")
        yield from _bundled_stories()
        return
    try:
        rows = load_dataset(HUB_DATASET, split="train", streaming=True)
        for row in rows:
            yield row["text"]
    except Exception as exc:  # network errors surface as many types; all mean "no hub"
        raise UserError(f"reading {HUB_DATASET} from the hub failed ({exc.__class__.__name__}: "
                        f"{exc}); use --data bundled or a local file") from None


def _bundled_stories() -> Iterator[str]:
    from ..corpus import load_bundled_text

    yield from _split_txt(load_bundled_text())


def _split_txt(text: str) -> list[str]:
    if EOS_TEXT in text:
        return [s for s in text.split(EOS_TEXT) if s.strip()]
    return [s for s in text.split("\n\n") if s.strip()]


def _file_stories(path: Path) -> Iterator[str]:
    regular_file(path, "data file")  # before opening: a FIFO would block, a device never end
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED)}")
    try:
        if suffix == ".txt":
            yield from _txt_stories(path)
        elif suffix == ".jsonl":
            yield from _jsonl_stories(path)
        elif suffix == ".json":
            yield from _json_stories(path)
        else:
            yield from _parquet_stories(path)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text (is it a binary file?)") from None
    except PermissionError:
        raise UserError(f"{path} cannot be read: permission denied") from None


def _txt_stories(path: Path, chunk_chars: int = 1 << 20) -> Iterator[str]:
    """Stream a .txt file in 1M-character chunks, yielding stories as their separators appear."""
    with open(path, encoding="utf-8", errors="strict") as f:
        head = f.read(chunk_chars)
        if "\x00" in head:
            raise UserError(f"{path} looks like a binary file (it contains NUL bytes), not text")
        # The first megabyte decides the format: marked stories, or blank-line-separated blocks.
        separator = EOS_TEXT if EOS_TEXT in head else "\n\n"
        buffer = head
        while True:
            *complete, buffer = buffer.split(separator)
            for story in complete:
                if story.strip():
                    yield story
            chunk = f.read(chunk_chars)
            if not chunk:
                break
            buffer += chunk
        if buffer.strip():
            yield buffer


def _story_from_record(record, where: str) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict) and isinstance(record.get("text"), str):
        return record["text"]
    raise UserError(f"{where}: expected a string or an object with a \"text\" string field")


def _jsonl_stories(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            record = loads_json(line, f"{path} line {number}", positions=False)
            yield _story_from_record(record, f"{path} line {number}")


def _json_stories(path: Path) -> Iterator[str]:
    data = loads_json(path.read_text(encoding="utf-8"), str(path))
    if isinstance(data, dict) and isinstance(data.get("text"), list):
        data = data["text"]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of stories or of objects with a \"text\" field")
    for index, record in enumerate(data):
        yield _story_from_record(record, f"{path} item {index}")


def _parquet_stories(path: Path) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("reading .parquet needs the pyarrow package: pip install pyarrow") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise UserError(f"{path} is not a readable parquet file ({exc})") from None
    if "text" not in table.schema_arrow.names:
        raise UserError(f"{path} has no \"text\" column (columns: {', '.join(table.schema_arrow.names)})")
    kind = table.schema_arrow.field("text").type
    if not _is_text(kind):
        raise UserError(f"{path}: its \"text\" column holds {kind}, not strings; "
                        "store the stories as a string column")
    for batch in table.iter_batches(columns=["text"], batch_size=1024):
        for text in batch.column(0).to_pylist():
            if text:
                yield text


def _is_text(kind) -> bool:
    """Is a pyarrow column type a string type (plain, large, or dictionary-encoded strings)?"""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or (
        hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind))
