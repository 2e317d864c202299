"""Stats: images, boxes, boxes per class and per image (they size ``detections_per_img`` and COCO's
``maxDets``), box sizes by COCO's areas, image sizes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from headfit.datasets.records import DetectionDataset
from headfit.datasets.report import ClassStats, DataStats
from headfit.datasets.table import BoxTable, distinct

SMALL, MEDIUM = 32**2, 96**2  # COCO's area ranges


def dataset_stats(dataset: DetectionDataset, table: BoxTable) -> DataStats:
    records = dataset.images
    counts = table.counts
    per_class = _per_class(dataset, table)
    b = table.boxes
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    sizes = Counter((r.width, r.height) for r in records if r.width is not None and r.height is not None)
    known = list(sizes)
    return DataStats(
        images=len(records),
        annotations=int(counts.sum()),
        classes=len(dataset.classes),
        per_class=per_class,
        boxes_per_image_max=int(counts.max()) if len(counts) else 0,
        boxes_per_image_p99=int(np.ceil(np.percentile(counts, 99))) if len(counts) else 0,
        boxes_per_image_mean=float(counts.mean()) if len(counts) else 0.0,
        negatives=int((counts == 0).sum()),
        crowd=int(table.crowd.sum()),
        small=int((area < SMALL).sum()),
        medium=int(((area >= SMALL) & (area < MEDIUM)).sum()),
        large=int((area >= MEDIUM).sum()),
        image_sizes=[(w, h, n) for (w, h), n in sizes.most_common(5)],
        smallest=min(known, key=lambda s: s[0] * s[1]) if known else None,
        largest=max(known, key=lambda s: s[0] * s[1]) if known else None,
        unreadable=sum(r.width is None for r in records),
        format=dataset.format,
        source=str(dataset.source),
        split=dataset.split,
    )


def _per_class(dataset: DetectionDataset, table: BoxTable) -> list[ClassStats]:
    k = len(dataset.classes)
    valid = table.labels >= 0
    boxes = np.bincount(table.labels[valid], minlength=k) if valid.any() else np.zeros(k, np.int64)
    pairs = distinct(table.image[valid] * k + table.labels[valid])  # each (image, class) once
    images = np.bincount(pairs % k, minlength=k) if len(pairs) else np.zeros(k, np.int64)
    return [
        ClassStats(cid, name, i, int(boxes[i]), int(images[i]))
        for i, (cid, name) in enumerate(zip(dataset.classes.ids, dataset.classes.names, strict=True))
    ]
