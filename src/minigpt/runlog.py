"""The run's logs: metrics.jsonl, samples.txt and the progress line on the terminal.

Every evaluation appends one JSON object to metrics.jsonl (step, train and held-out loss, learning
rate, speed, ...) and one sample story to samples.txt under a `--- step N` header. This module is
the only code that writes or reads those two files, so their format lives in one place.

A run can be killed at any moment, also halfway through writing a line. The reader therefore
skips a line it cannot parse, and the writer first ends a torn last line, so a new record never
glues onto the remains of the old one. On resume, `forget_after` drops what was logged after the
restored step: those steps are trained, and logged, again.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .files import regular_file, too_deep

METRICS = "metrics.jsonl"
SAMPLES = "samples.txt"
_SAMPLE_HEADER = re.compile(r"--- step (\d+)\s*")


def append_metrics(run_dir: str | Path, record: dict) -> None:
    """Add one evaluation's record (a JSON object on a line of its own) to metrics.jsonl, and to
    the TensorBoard events while `tensorboard()` is on for the run."""
    _append(Path(run_dir) / METRICS, json.dumps(record) + "\n")
    board = _boards.get(Path(run_dir))
    if board is not None:
        for tag, key in BOARD_SCALARS.items():
            if isinstance(record.get(key), (int, float)):
                board.add_scalar(tag, record[key], record["step"])
        board.flush()


def append_sample(run_dir: str | Path, step: int, story: str) -> None:
    """Add the sample story printed at `step` to samples.txt (and to TensorBoard's text tab)."""
    _append(Path(run_dir) / SAMPLES, f"--- step {step}\n{story}\n")
    board = _boards.get(Path(run_dir))
    if board is not None:
        board.add_text("sample", story.replace("\n", "  \n"), step)  # markdown: keep the line breaks
        board.flush()


# TensorBoard's names for metrics.jsonl's numbers: bits per character compare across tokenizers.
BOARD_SCALARS = {"bits_per_char/train": "train_bpc", "bits_per_char/held_out": "val_bpc",
                 "nats_per_token/train": "train_nats", "nats_per_token/held_out": "val_nats",
                 "learning_rate": "lr", "chars_per_s": "chars_per_s"}
BOARD_DIR = "tensorboard"
_boards: dict[Path, object] = {}  # run directory -> its open SummaryWriter


@contextmanager
def tensorboard(run_dir: str | Path, on: bool, step: int = 0):
    """While active (when `on`), what append_metrics and append_sample log also goes to
    TensorBoard event files in RUN/tensorboard (`tensorboard --logdir runs` shows every run).
    Resuming at `step` purges what an earlier attempt logged after it, as forget_after does."""
    if not on:
        yield
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs tensorboard: pip install tensorboard") from None
    run_dir = Path(run_dir)
    _boards[run_dir] = SummaryWriter(str(run_dir / BOARD_DIR), purge_step=step + 1 if step else None)
    try:
        yield
    finally:
        _boards.pop(run_dir).close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every record in metrics.jsonl, oldest first; none yet (or no file): an empty list.

    A line that is not a JSON object -- the torn end a kill leaves, or anything else -- is skipped,
    and so is one nested deeper than files.MAX_JSON_DEPTH. A FIFO, socket or device in the file's
    place is a UserError (it is never opened).
    """
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in regular_file(path, "metrics").read_text(encoding="utf-8", errors="replace").splitlines():
        if too_deep(line):
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def curves(run_dir: str | Path) -> list[dict]:
    """The learning curves of metrics.jsonl: each record with a step, with the numbers a chart
    draws (train / held-out bits per char, learning rate, speed, time); one missing or not finite
    is None (JSON has no NaN)."""
    def number(value):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None

    fields = ("train_bpc", "val_bpc", "lr", "chars_per_s", "elapsed_s")
    return [{"step": r["step"], **{k: number(r.get(k)) for k in fields}} for r in read_metrics(run_dir)
            if isinstance(r.get("step"), int) and not isinstance(r.get("step"), bool)]


def metrics_text(records: list[dict]) -> str:
    """Records as the lines of a metrics.jsonl (export copies a run's curves with it)."""
    return "".join(json.dumps(r) + "\n" for r in records)


def forget_after(run_dir: str | Path, step: int) -> None:
    """Drop the metrics and sample stories logged after `step` (resume logs them again)."""
    run_dir = Path(run_dir)
    for name in (METRICS, SAMPLES):  # both checked before either is rewritten
        if (run_dir / name).exists():
            regular_file(run_dir / name, "log file")
    if (run_dir / METRICS).exists():
        kept = [r for r in read_metrics(run_dir) if isinstance(r.get("step"), int) and r["step"] <= step]
        _rewrite(run_dir / METRICS, metrics_text(kept))
    samples = run_dir / SAMPLES
    if samples.exists():
        kept, keeping = [], True
        text = regular_file(samples, "samples").read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines(keepends=True):
            header = _SAMPLE_HEADER.fullmatch(line)
            if header:  # a story's first line says which step printed it
                keeping = int(header.group(1)) <= step
            if keeping:
                kept.append(line)
        _rewrite(samples, "".join(kept))


def _append(path: Path, text: str) -> None:
    """Append `text`, starting on a new line if the file's last line was left unfinished."""
    with open(path, "a+b") as f:  # "a": every write goes to the end; "+": the end can be read
        size = f.seek(0, os.SEEK_END)
        torn = False
        if size:
            f.seek(size - 1)
            torn = f.read(1) != b"\n"
        f.write((b"\n" if torn else b"") + text.encode("utf-8"))


def _rewrite(path: Path, text: str) -> None:
    """Replace the file in one step (write a copy, then rename): a kill leaves old or new."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Progress:
    """One status line on stderr: rewritten in place on a terminal, every 30 s in a log file.

    `budget` is the run's Budget (train.py): it says how far along the run is, for the ETA.
    """

    def __init__(self, budget):
        self.budget, self.tty = budget, sys.stderr.isatty()
        self.last = 0.0

    def update(self, step: int, elapsed: float, loss: float, chars_per_s: float, force=False):
        now = time.monotonic()
        if not force and now - self.last < (0.5 if self.tty else 30.0):
            return
        self.last = now
        done = self.budget.progress(step, elapsed)
        eta = elapsed * (1 - done) / done if done > 0 else 0.0
        total = f"/{self.budget.max_steps}" if self.budget.max_steps else ""
        line = (f"step {step}{total} {done:4.0%} | loss {loss:.3f} | "
                f"{chars_per_s / 1000:.1f}k chars/s | {_clock(elapsed)} elapsed, ETA {_clock(eta)}")
        print(("\r" + line.ljust(100)) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def close(self):
        if self.tty:
            print(file=sys.stderr)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
