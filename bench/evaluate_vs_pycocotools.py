"""headfit's mAP engine (``evaluate_detections``, faster-coco-eval) against pycocotools, on the same
ground truth and the same detections, in one run.

    python bench/evaluate_vs_pycocotools.py            # both scenarios, best of up to 3 runs each

Scenarios: "coco-like" is 500 images, 20 classes (ids with gaps), about 7 objects per image with some
crowd regions, and 100 detections per image (jittered true boxes, wrong classes, false positives):
50,000 detections, COCO's maxDets 100. "dense" is 40 aerial-style images of 150 objects of one
class with 300 detections each, where headfit raises maxDets to 300 (pycocotools is given the same
maxDets list). headfit's time includes building its COCO documents from the ``DetectionDataset``;
pycocotools is handed its documents ready-made, copied outside its timer (then timed: index,
``loadRes``, evaluate, accumulate, summarize). A tool whose run takes over 20 s is run once.
Target (issue 10): headfit faster, every AP identical to 1e-6.
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import time
from pathlib import Path

import numpy as np

from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.evaluation import Detections, evaluate_detections

REPEATS = 3
ONCE_AFTER_S = 20.0  # a run this slow is not repeated
SIZE = 640


def scenario(
    seed: int, images: int, classes: int, objects: int, detections: int, one_class: bool
) -> tuple[DetectionDataset, list[Detections]]:
    rng = np.random.default_rng(seed)
    class_ids = [1 + 3 * k for k in range(classes)]  # 1, 4, 7, ...: gaps, as COCO's own ids have
    records, found = [], []
    for i in range(images):
        count = objects if one_class else int(rng.poisson(objects))
        xy = rng.uniform(0, SIZE * 0.85, (count, 2))
        wh = rng.uniform(6, SIZE * (0.05 if one_class else 0.35), (count, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        labels = np.full(count, class_ids[0]) if one_class else rng.choice(class_ids, count)
        records.append(
            ImageRecord(
                image_id=i + 1,
                file=Path(f"{i + 1:06d}.jpg"),
                width=SIZE,
                height=SIZE,
                boxes=boxes,
                category_ids=labels.astype(np.int64),
                crowd=rng.random(count) < (0.0 if one_class else 0.03),
            )
        )
        hits = min(count, detections)
        jittered = boxes[:hits] + rng.normal(0, 3, (hits, 4)).astype(np.float32)
        hit_labels = labels[:hits].copy()
        wrong = rng.random(hits) < 0.1
        hit_labels[wrong] = rng.choice(class_ids, int(wrong.sum()))
        extra = detections - hits
        xy = rng.uniform(0, SIZE * 0.85, (extra, 2))
        wh = rng.uniform(6, SIZE * 0.3, (extra, 2))
        false = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = np.concatenate([rng.uniform(0.3, 1.0, hits), rng.uniform(0.0, 0.7, extra)]).astype(
            np.float32
        )
        found.append(
            Detections(
                i + 1,
                np.concatenate([jittered, false]),
                scores,
                np.concatenate([hit_labels, rng.choice(class_ids, extra)]).astype(np.int64),
            )
        )
    names = [f"class{c}" for c in class_ids]
    return DetectionDataset(records, ClassMap(class_ids, names), Path("bench"), "coco"), found


def coco_documents(dataset: DetectionDataset, detections: list[Detections]) -> tuple[dict, list[dict]]:
    """pycocotools' input, built outside its timer."""
    annotations = []
    for r in dataset.images:
        for (x1, y1, x2, y2), c, crowd in zip(
            r.boxes.tolist(), r.category_ids.tolist(), r.crowd.tolist(), strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": r.image_id,
                    "category_id": c,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(crowd),
                }
            )
    truth = {
        "images": [{"id": r.image_id, "width": r.width, "height": r.height} for r in dataset.images],
        "annotations": annotations,
        "categories": [
            {"id": c, "name": n} for c, n in zip(dataset.classes.ids, dataset.classes.names, strict=True)
        ],
    }
    results = [
        {"image_id": d.image_id, "category_id": c, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
        for d in detections
        for (x1, y1, x2, y2), s, c in zip(
            d.boxes.tolist(), d.scores.tolist(), d.category_ids.tolist(), strict=True
        )
    ]
    return truth, results


def run_pycocotools(truth: dict, results: list[dict], max_dets: list[int]):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.params.maxDets = max_dets
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def reference_metrics(evaluator) -> dict[str, float]:
    """AP at the last maxDets from pycocotools' precision arrays (its summarize() reads AP at 100)."""
    precision, recall = evaluator.eval["precision"], evaluator.eval["recall"]
    hundred = evaluator.params.maxDets.index(100)

    def mean(values):
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else None

    metrics = {
        "AP": mean(precision[:, :, :, 0, -1]),
        "AP50": mean(precision[0, :, :, 0, -1]),
        "AP75": mean(precision[5, :, :, 0, -1]),
        "APs": mean(precision[:, :, :, 1, -1]),
        "APm": mean(precision[:, :, :, 2, -1]),
        "APl": mean(precision[:, :, :, 3, -1]),
        "AR100": mean(recall[:, :, 0, hundred]),
    }
    for k, cid in enumerate(evaluator.params.catIds):
        metrics[f"AP[{cid}]"] = mean(precision[:, :, k, 0, -1])
    return metrics


def headfit_metrics(report) -> dict[str, float]:
    metrics = {name: getattr(report, name) for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")}
    metrics.update({f"AP[{row.id}]": row.AP for row in report.per_class})
    return metrics


def best_time(fn, *inputs) -> tuple[float, object]:
    """The best time of ``fn(*copies of inputs)`` over up to REPEATS runs (copies made untimed:
    pycocotools writes into the documents it is given)."""
    best, result = float("inf"), None
    for _ in range(REPEATS):
        copies = copy.deepcopy(inputs)
        started = time.perf_counter()
        result = fn(*copies)
        best = min(best, time.perf_counter() - started)
        if best > ONCE_AFTER_S:
            break
    return best, result


def difference(a: dict, b: dict) -> float:
    if a.keys() != b.keys() or any((a[k] is None) != (b[k] is None) for k in a):
        return float("inf")
    return max(abs(a[k] - b[k]) for k in a if a[k] is not None)


def main() -> int:
    scenarios = {
        "coco-like": dict(seed=0, images=500, classes=20, objects=7, detections=100, one_class=False),
        "dense": dict(seed=1, images=40, classes=1, objects=150, detections=300, one_class=True),
    }
    rows, ok = [], True
    for name, settings in scenarios.items():
        dataset, detections = scenario(**settings)
        truth, results = coco_documents(dataset, detections)
        ours, report = best_time(evaluate_detections, dataset, detections)
        max_dets = [1, 10, 100] if report.max_dets == 100 else [1, 10, 100, report.max_dets]
        theirs, evaluator = best_time(run_pycocotools, truth, results, max_dets)
        gap = difference(headfit_metrics(report), reference_metrics(evaluator))
        faster = theirs / ours
        ok &= gap <= 1e-6 and faster > 1
        count = sum(len(d) for d in detections)
        rows.append(
            (
                name,
                len(dataset.images),
                len(dataset.classes),
                dataset.num_annotations,
                count,
                report.max_dets,
                ours,
                theirs,
                faster,
                gap,
                report.AP,
            )
        )
    header = (
        "scenario",
        "images",
        "classes",
        "boxes",
        "detections",
        "maxDets",
        "headfit s",
        "pycocotools s",
        "speed-up",
        "max |AP diff|",
        "AP",
    )
    print(" | ".join(header))
    for row in rows:
        name, images, classes, boxes, count, max_dets, ours, theirs, faster, gap, ap = row
        print(
            f"{name} | {images} | {classes} | {boxes:,} | {count:,} | {max_dets} | {ours:.2f} | {theirs:.2f} | "
            f"{faster:.1f}x | {gap:.1e} | {ap:.4f}"
        )
    print(
        f"target: headfit faster and every AP (overall, per area, AR100, each class) within 1e-6: "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
