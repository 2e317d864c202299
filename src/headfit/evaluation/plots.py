"""Plots of an evaluation: precision-recall curves per class, and images with true and predicted boxes.

Figures are ``matplotlib.figure.Figure`` objects saved by the Agg canvas, never pyplot: no display is
needed, and a notebook's or a training script's pyplot backend is left alone. Boxes are drawn by
``torchvision.utils.draw_bounding_boxes`` with matplotlib's own DejaVu Sans font, so labels are
readable at any image size on any machine. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headfit.datasets.records import ClassMap, DetectionDataset
from headfit.evaluation.coco import Detections, EvalReport
from headfit.files import atomic_write

if TYPE_CHECKING:
    import torch

LEGEND_CLASSES = 20  # more classes than this: the curves without a legend entry each
TRUE_COLOR = (0, 230, 0)
GRID_CONF = 0.25  # predictions drawn on the grid score at least this
GRID_SIDE = 400  # grid images are resized to this longer side, so boxes and labels read alike on all
# tab10 without its green (green is the ground truth): a class's color on images and in the PR plot
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def plot_pr_curves(report: EvalReport, path: str | Path, *, iou: float = 0.5) -> Path:
    """Precision against recall at IoU ``iou`` for every class with ground truth, and their mean
    (COCO's interpolated precision at its 101 recall points; the area under a curve is the AP50)."""
    path = Path(path)
    t = int(np.flatnonzero(np.isclose(report.iou_thresholds, iou))[0])
    recall = report.recall_thresholds
    figure = _figure(figsize=(7, 5.5), dpi=120)
    axes = figure.subplots()
    curves = []
    for k, row in enumerate(report.per_class):
        precision = report.precision[t, :, k]
        if row.ground_truth == 0 or (precision < 0).all():
            continue
        curves.append(precision)
        label = f"{row.name}  {row.AP50:.3f}" if len(report.per_class) <= LEGEND_CLASSES else None
        axes.plot(recall, precision, linewidth=1, label=label, color=_color(k, normalised=True))
    if curves:
        mean = np.mean(curves, axis=0)
        axes.plot(recall, mean, linewidth=3, color="#1f3b73", label=f"all classes  {report.AP50:.3f} AP50")
    else:
        axes.text(0.5, 0.5, "no class has ground truth", ha="center", va="center", transform=axes.transAxes)
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision")
    axes.set_title(f"precision-recall at IoU {iou:.2f} (maxDets {report.max_dets})")
    axes.grid(alpha=0.3)
    if curves:
        axes.legend(loc="lower left", fontsize=8, frameon=False)
    return _save(figure, path)


def draw_predictions_grid(
    dataset: DetectionDataset,
    detections: Sequence[Detections],
    path: str | Path,
    *,
    n: int = 16,
    conf: float = GRID_CONF,
) -> Path:
    """The first ``n`` images of ``dataset`` in a grid: true boxes in green, predictions scoring at
    least ``conf`` in their class's color with name and score."""
    import torch

    from headfit.datasets import decode_image

    path = Path(path)
    by_image = {d.image_id: d for d in detections}
    records = dataset.images[:n]
    columns = max(1, min(4, math.ceil(math.sqrt(len(records)))))
    rows = max(1, math.ceil(len(records) / columns))
    figure = _figure(figsize=(4 * columns, 4 * rows), dpi=100)
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, record in zip(axes.flat, records, strict=False):
        image, scale = _resized(decode_image(record.file), GRID_SIDE)
        drawn = draw_boxes(image, torch.as_tensor(record.boxes * scale), colors=TRUE_COLOR)
        found = by_image.get(record.image_id)
        if found is not None:
            keep = found.scores >= conf
            drawn = draw_detections(
                drawn,
                found.boxes[keep] * scale,
                found.scores[keep],
                found.category_ids[keep],
                dataset.classes,
            )
        axis.imshow(drawn.permute(1, 2, 0).numpy())
        shown = 0 if found is None else int((found.scores >= conf).sum())
        axis.set_title(f"{record.file.name}: {record.num_boxes} true, {shown} found", fontsize=9)
    figure.suptitle(f"green: ground truth; colored: predictions with score >= {conf:g}", fontsize=11)
    return _save(figure, path)


def _resized(image: torch.Tensor, side: int) -> tuple[torch.Tensor, float]:
    """``image`` scaled so its longer side is ``side`` pixels, and the scale factor for its boxes."""
    from torchvision.transforms.v2.functional import resize

    scale = side / max(image.shape[-2:])
    size = [max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale))]
    return resize(image, size, antialias=True), scale


def draw_detections(
    image: torch.Tensor, boxes: Any, scores: Any, category_ids: Any, classes: ClassMap
) -> torch.Tensor:
    """``image`` (uint8 ``[3, H, W]``) with each box in its class's color, labelled ``name 0.87``;
    the best-scored boxes are drawn last, so their labels stay readable where boxes overlap."""
    import torch

    order = np.argsort(np.asarray(scores), kind="stable")
    scores, category_ids = np.asarray(scores)[order], np.asarray(category_ids)[order]
    index = [classes.index_of(c) for c in category_ids.tolist()]
    labels = [f"{classes.names[k]} {float(s):.2f}" for k, s in zip(index, scores.tolist(), strict=True)]
    boxes = torch.as_tensor(np.asarray(boxes).reshape(-1, 4)[order])
    return draw_boxes(image, boxes, labels=labels, colors=[_color(k) for k in index])


def draw_boxes(
    image: torch.Tensor, boxes: torch.Tensor, *, labels: list[str] | None = None, colors: Any
) -> torch.Tensor:
    from torchvision.utils import draw_bounding_boxes

    if len(boxes) == 0:
        return image
    side = min(image.shape[-2:])
    return draw_bounding_boxes(
        image,
        boxes.float().reshape(-1, 4),
        labels=labels,
        colors=colors,
        width=max(1, round(side / 250)),
        font=_font(),
        font_size=max(10, round(side / 32)),
        fill_labels=labels is not None,  # text on a box-colored tab: legible on any background
    )


def _color(index: int, normalised: bool = False) -> Any:
    """A class's color, the same in the PR plot and on images."""
    rgb = PALETTE[index % len(PALETTE)]
    return tuple(c / 255 for c in rgb) if normalised else rgb


def _font() -> str:
    from matplotlib import font_manager

    return font_manager.findfont("DejaVu Sans")


def _figure(**options: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(layout="constrained", **options)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    atomic_write(path, lambda file: figure.savefig(file, format=path.suffix.lstrip(".") or "png"))
    return path
