"""Pictures: attention heat-maps and loss curves, drawn with matplotlib into PNG files.

matplotlib is imported inside each function (with the file-only 'Agg' backend), so the rest of the
package starts fast and works without it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .errors import UserError
from .runlog import METRICS, read_metrics


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("drawing needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shown(label: str) -> str:
    return {"\n": "\\n", " ": "\u2423", "$": "\\$"}.get(label, label)


def plot_attention(maps: torch.Tensor, labels: list[str], out: str | Path,
                   layer: int | None = None, head: int | None = None) -> Path:
    """A grid of heat-maps, one per (layer, head); rows = queries, columns = keys (characters)."""
    n_layers, n_heads = maps.shape[:2]
    for value, limit, name in ((layer, n_layers, "layer"), (head, n_heads, "head")):
        if value is not None and not 0 <= value < limit:
            raise UserError(f"--{name} must be between 0 and {limit - 1}, got {value}")
    layers = [layer] if layer is not None else list(range(n_layers))
    heads = [head] if head is not None else list(range(n_heads))
    plt = _pyplot()
    size = 2.6 if len(layers) * len(heads) > 1 else 7.0
    fig, axes = plt.subplots(len(layers), len(heads), squeeze=False,
                             figsize=(size * len(heads) + 1, size * len(layers) + 0.6))
    ticks = [_shown(label) for label in labels]
    show_ticks = len(labels) <= 48
    for r, li in enumerate(layers):
        for c, hi in enumerate(heads):
            ax = axes[r][c]
            ax.imshow(maps[li, hi].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {li}, head {hi}", fontsize=9)
            if show_ticks:
                ax.set_xticks(range(len(ticks)), ticks, fontsize=6, rotation=90)
                ax.set_yticks(range(len(ticks)), ticks, fontsize=6)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("attention: each row is a character, each column what it looks at", fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, out)


def _logged_steps(run_dir: str | Path) -> list[dict]:
    """A run's metrics records, or a UserError saying why there are none to draw."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise UserError(f"{path} is missing: is {run_dir} a training run directory?")
    rows = read_metrics(run_dir)
    if not rows:
        raise UserError(f"{path} has no logged steps yet")
    return rows


def plot_loss(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Train and held-out bits/char against step and against wall-clock time, the learning rate on
    a second axis; several runs share the axes so they compare."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, run in enumerate(run_dirs):
        rows = _logged_steps(run)
        color = colors[index % len(colors)]
        name = Path(run).name
        for ax, x_key, x_label in ((axes[0], "step", "step"), (axes[1], "elapsed_s", "seconds trained")):
            x = [r[x_key] for r in rows]
            train_bpc = [r.get("train_bpc", r["train_nats"] / math.log(2)) for r in rows]
            ax.plot(x, train_bpc, color=color, linestyle="--", label=f"{name} train")
            ax.plot(x, [r["val_bpc"] for r in rows], color=color, marker="o", markersize=3,
                    label=f"{name} held-out")
            ax.set_xlabel(x_label)
            ax.set_ylabel("bits per character")
            ax.grid(alpha=0.3)
            if len(run_dirs) == 1:
                lr_ax = ax.twinx()
                lr_ax.plot(x, [r["lr"] for r in rows], color="grey", alpha=0.6, label="learning rate")
                lr_ax.set_ylabel("learning rate", color="grey")
    axes[0].legend(fontsize=8)
    fig.suptitle("loss curves (lower is better)")
    fig.tight_layout()
    return _save(fig, plt, out)


def draw_run_loss(run_dir: Path, log) -> None:
    """loss.png in a run directory when training ends; without matplotlib, only say so (the run
    itself is fine)."""
    try:
        log(f"loss curves: {plot_loss([run_dir], run_dir / 'loss.png')}")
    except UserError as exc:
        log(f"no loss.png: {exc}")


def _save(fig, plt, out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"{out}: pictures are saved as .png; give a file name ending in .png")
    if not out.parent.exists():
        raise UserError(f"cannot save {out}: the folder {out.parent} does not exist")
    try:
        fig.savefig(out, dpi=110)
    except OSError as exc:
        raise UserError(f"cannot save {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return out
