"""Fixed detection sets for the evaluation tests, and pycocotools as the reference engine.

The reference builds its COCO documents itself from the records, in the dataset's own ids, so a
mistake in headfit's conversion (ids, xywh, crowd, area) shows up as a difference.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.evaluation import Detections


def random_set(
    seed: int,
    *,
    images: int = 12,
    class_ids: tuple = (1, 3, 7),
    dense_every: int = 0,
    dense_boxes: int = 140,
    size: int = 200,
    string_ids: bool = False,
) -> tuple[DetectionDataset, list[Detections]]:
    """Ground truth with crowd boxes, empty images and (optionally) dense images, and detections:
    jittered copies of most true boxes (some with the wrong class), random false positives, and
    images with no detections at all."""
    rng = np.random.default_rng(seed)
    names = [f"class{c}" for c in class_ids]
    records, detections = [], []
    for i in range(images):
        image_id = f"img_{i:03d}.jpg" if string_ids else 10 * i + 5  # gaps in image ids too
        dense = dense_every and i % dense_every == dense_every - 1
        count = dense_boxes if dense else (0 if i % 4 == 0 else int(rng.integers(1, 9)))
        boxes = _boxes(rng, count, size)
        categories = rng.choice(np.asarray(class_ids, dtype=object if string_ids else np.int64), count)
        if dense:
            categories[: count * 3 // 4] = class_ids[0]  # a dense image is mostly one class (trees)
        crowd = rng.random(count) < 0.07
        records.append(
            ImageRecord(
                image_id=image_id,
                file=Path(f"{image_id}"),
                width=size,
                height=size,
                boxes=boxes,
                category_ids=categories,
                crowd=crowd,
                annotation_ids=list(range(count)),
            )
        )
        if i % 6 == 5:
            continue  # an image without detections
        keep = rng.random(count) < 0.85
        found = boxes[keep] + rng.normal(0, 2.5, (int(keep.sum()), 4)).astype(np.float32)
        found_categories = categories[keep].copy()
        swap = rng.random(len(found_categories)) < 0.1
        found_categories[swap] = rng.choice(
            np.asarray(class_ids, dtype=found_categories.dtype), int(swap.sum())
        )
        extra = int(rng.integers(0, 12))
        found = np.concatenate([found, _boxes(rng, extra, size)])
        found_categories = np.concatenate(
            [found_categories, rng.choice(np.asarray(class_ids, dtype=found_categories.dtype), extra)]
        )
        scores = rng.random(len(found)).astype(np.float32)
        scores[rng.random(len(found)) < 0.1] = 0.5  # ties across images: COCO's ordering must match
        detections.append(Detections(image_id, found, scores, found_categories))
    dataset = DetectionDataset(
        images=records, classes=ClassMap(ids=list(class_ids), names=names), source=Path("mem"), format="coco"
    )
    return dataset, detections


def _boxes(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    xy = rng.uniform(0, size * 0.8, (count, 2))
    wh = rng.uniform(2, size * 0.45, (count, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def pycocotools_eval(dataset: DetectionDataset, detections: list[Detections], max_dets: list[int]):
    """pycocotools' COCOeval after evaluate() and accumulate(), on documents built here."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    image_ids = reference_ids([r.image_id for r in dataset.images])
    category_ids = reference_ids(dataset.classes.ids)
    annotations = []
    for r in dataset.images:
        for (x1, y1, x2, y2), c, crowd in zip(
            r.boxes.tolist(), r.category_ids.tolist(), r.crowd.tolist(), strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_ids[r.image_id],
                    "category_id": category_ids[c],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(crowd),
                }
            )
    results = [
        {
            "image_id": image_ids[d.image_id],
            "category_id": category_ids[c],
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": s,
        }
        for d in detections
        for (x1, y1, x2, y2), s, c in zip(
            d.boxes.tolist(), d.scores.tolist(), d.category_ids.tolist(), strict=True
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": [
                {"id": image_ids[r.image_id], "width": r.width, "height": r.height} for r in dataset.images
            ],
            "annotations": annotations,
            "categories": [
                {"id": category_ids[c], "name": n}
                for c, n in zip(dataset.classes.ids, dataset.classes.names, strict=True)
            ],
        }
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.params.maxDets = max_dets
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def reference_ids(ids) -> dict:
    """As COCO needs them: ints as they are, strings numbered in sorted order."""
    if all(isinstance(i, int) for i in ids):
        return {i: i for i in ids}
    return {i: n for n, i in enumerate(sorted(ids), start=1)}


def coco_mean(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None
