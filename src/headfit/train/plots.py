"""The curves of a run from ``metrics.csv``: each loss term per epoch, and the validation metrics.

Figures are ``matplotlib.figure.Figure`` saved by the Agg canvas, never pyplot, so no display is
needed and the caller's backend is left alone.
"""

from __future__ import annotations

from pathlib import Path

from headfit.files import atomic_write
from headfit.train.metrics import MetricsLog

LOSS_PLOT, METRIC_PLOT = "loss.png", "mAP.png"


def plot_curves(
    log: MetricsLog,
    folder: Path,
    *,
    terms: list[str],
    metrics: tuple[str, ...] = ("val_AP", "val_AP50", "val_AP75"),
) -> list[Path]:
    """``folder/loss.png`` (every loss term and ``train_loss``) and ``folder/mAP.png``."""
    written = [_plot(log, folder / LOSS_PLOT, terms, "loss per epoch (mean over the epoch's steps)", "loss")]
    present = [m for m in metrics if m in log.columns()]
    if present:
        written.append(_plot(log, folder / METRIC_PLOT, present, "validation per epoch", "COCO box metric"))
    return written


def _plot(log: MetricsLog, path: Path, columns: list[str], title: str, ylabel: str) -> Path:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7, 4.5), dpi=110)
    axes = figure.subplots()
    for column in columns:
        epochs, values = log.series(column)
        if epochs:
            width = 2.5 if column in ("train_loss", "val_AP") else 1.2
            axes.plot(epochs, values, marker="o", markersize=3, linewidth=width, label=column)
    axes.set(title=title, xlabel="epoch", ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png"))
    return path
