"""The deterministic train/val split of a dataset that names no splits itself (a COCO JSON, a CSV).

Images are ordered by a hash of their id (not by position, so adding images to the file moves few
of the old ones across), and the first ``round(n * val_fraction)`` are val (at least one, when there
are two images or more). The same dataset always splits the same way, on every machine and rank.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from headfit.datasets.records import DetectionDataset
from headfit.errors import UsageError


def split_by_id(
    dataset: DetectionDataset, val_fraction: float = 0.2
) -> tuple[DetectionDataset, DetectionDataset]:
    """``(train, val)``: each image in exactly one, chosen by a hash of its id."""
    if not 0.0 < val_fraction < 1.0:
        raise UsageError(
            f"val_fraction {val_fraction}: the share of images kept for validation is between 0 and 1"
        )
    count = len(dataset.images)
    if count < 2:
        raise UsageError(
            f"`{dataset.source}` has {count} image{'s' if count != 1 else ''}: splitting it into train and "
            "val needs at least 2; give a separate validation set with --val"
        )
    val_count = min(count - 1, max(1, round(count * val_fraction)))
    ranked = sorted(range(count), key=lambda i: _rank(dataset.images[i].image_id))
    in_val = set(ranked[:val_count])
    train = [r for i, r in enumerate(dataset.images) if i not in in_val]
    val = [r for i, r in enumerate(dataset.images) if i in in_val]
    return replace(dataset, images=train, split="train"), replace(dataset, images=val, split="val")


def _rank(image_id: int | str) -> tuple[bytes, str]:
    text = f"{type(image_id).__name__}:{image_id}"
    return hashlib.sha1(text.encode("utf-8")).digest(), text
