"""COCO box mAP of detections on a ``DetectionDataset``, computed by faster-coco-eval.

This is headfit's one mAP engine: ``headfit evaluate`` and training's per-epoch validation both call
``evaluate_detections``. The COCO ground truth is built in memory from the dataset (no JSON written),
with COCO's definitions kept exactly, so the numbers equal pycocotools' on the same boxes:

- boxes become ``[x, y, w, h]`` and a ground-truth box's area is ``w * h`` (the data carries boxes,
  not masks, so the small/medium/large split is by box area);
- ``crowd`` boxes are COCO ``iscrowd`` regions: never a miss, and detections on them are not counted;
- integer image and category ids are used as they are; string ids (YOLO, VOC, CSV name images and
  classes by strings) are numbered 1.. in sorted order, which keeps COCO's ordering deterministic;
- ``maxDets`` is COCO's ``[1, 10, 100]``, with one more entry when an image holds more than 100
  ground-truth boxes of one class (dense data: trees, cells, crowds), where 100 detections cannot find
  them all. COCO applies the cap per image and class.

Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headfit.datasets.records import DatasetId, DetectionDataset
from headfit.errors import UsageError

COCO_MAX_DETS = 100  # COCO's detections per image, and torchvision's `detections_per_img`


@dataclass
class Detections:
    """A model's detections on one image, in the dataset's ids and the original image's pixels."""

    image_id: DatasetId
    boxes: np.ndarray  # float32 [M, 4], x1 y1 x2 y2
    scores: np.ndarray  # float32 [M]
    category_ids: np.ndarray  # [M], dataset category ids (int64, or strings for string-named classes)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.category_ids = np.asarray(self.category_ids).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.category_ids):
            raise ValueError(
                f"Detections for image {self.image_id!r}: {len(self.boxes)} boxes, {len(self.scores)} "
                f"scores and {len(self.category_ids)} category ids; they must be the same count"
            )

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ClassAP:
    """One class's row of the report (AP is None for a class without ground truth: COCO's -1)."""

    name: str
    id: DatasetId
    AP: float | None
    AP50: float | None
    ground_truth: int  # non-crowd ground-truth boxes
    detections: int


@dataclass
class EvalReport:
    """COCO box metrics of one evaluation (AP in 0..1; None where COCO gives -1: nothing to measure)."""

    AP: float | None
    AP50: float | None
    AP75: float | None
    APs: float | None
    APm: float | None
    APl: float | None
    AR100: float | None  # average recall with at most 100 detections per image
    per_class: list[ClassAP]
    max_dets: int  # detections per image the AP counts (100, or more for dense data)
    max_ground_truth: int  # the most ground-truth boxes of one class in one image
    images: int
    detections: int
    AR_max: float | None = None  # average recall at max_dets, when max_dets > 100
    # for PR curves: precision[t, r, k] at IoU iou_thresholds[t], recall recall_thresholds[r], class k
    # (area "all", max_dets); -1 where class k has no ground truth
    precision: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)), repr=False)
    iou_thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def raised_max_dets(self) -> bool:
        return self.max_dets > COCO_MAX_DETS

    def to_dict(self) -> dict[str, Any]:
        """The contract's ``evaluate --json`` document (plus ids, counts and maxDets)."""
        return {
            "AP": self.AP,
            "AP50": self.AP50,
            "AP75": self.AP75,
            "APs": self.APs,
            "APm": self.APm,
            "APl": self.APl,
            "AR100": self.AR100,
            "AR_max": self.AR_max,
            "max_dets": self.max_dets,
            "max_ground_truth": self.max_ground_truth,
            "images": self.images,
            "detections": self.detections,
            "per_class": [
                {
                    "name": c.name,
                    "id": c.id,
                    "AP": c.AP,
                    "AP50": c.AP50,
                    "ground_truth": c.ground_truth,
                    "detections": c.detections,
                }
                for c in self.per_class
            ],
        }


def max_dets_for(dataset: DetectionDataset) -> int:
    """COCO's ``maxDets`` for ``dataset``: 100, or more when an image holds more than 100 boxes of one
    class (COCO caps detections per image *and class*; see ``room_for``)."""
    return room_for(most_boxes(dataset, per_class=True))


def detections_per_image_for(dataset: DetectionDataset) -> int:
    """The detections a model should keep per image on ``dataset`` (torchvision's ``detections_per_img``
    counts all classes together): 100, or more when an image holds more than 100 boxes."""
    return room_for(most_boxes(dataset))


def room_for(most: int) -> int:
    """100 for up to 100 objects; otherwise the smallest multiple of 100 that is at least twice
    ``most`` (room for every object and as many candidates competing for them)."""
    if most <= COCO_MAX_DETS:
        return COCO_MAX_DETS
    return int(math.ceil(2 * most / 100) * 100)


def most_boxes(dataset: DetectionDataset, *, per_class: bool = False) -> int:
    """The most ground-truth boxes in one image (of one class, with ``per_class``)."""
    if not per_class:
        return max((r.num_boxes for r in dataset.images), default=0)
    counts = (np.unique(r.category_ids, return_counts=True)[1] for r in dataset.images if r.num_boxes)
    return int(max((c.max() for c in counts), default=0))


def evaluate_detections(
    dataset: DetectionDataset, detections: Iterable[Detections], *, max_dets: int | None = None
) -> EvalReport:
    """COCO box metrics of ``detections`` against ``dataset``'s boxes (faster-coco-eval).

    ``max_dets`` (detections per image the AP counts) defaults to ``max_dets_for(dataset)``. Images
    of the dataset without detections count as images where nothing was found; detections on an
    image or of a class the dataset does not have raise ``UsageError``.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    detections = list(detections)
    max_dets = max_dets_for(dataset) if max_dets is None else int(max_dets)
    if max_dets < 1:
        raise UsageError(f"max_dets must be at least 1, got {max_dets}")
    ids = CocoIds(dataset)
    ground_truth = COCO(ids.ground_truth(dataset))
    results = COCO(ids.results(detections, ground_truth.dataset))
    evaluator = COCOeval_faster(ground_truth, results, iouType="bbox", print_function=_silent)
    evaluator.params.maxDets = coco_max_dets(max_dets)
    evaluator.evaluate()
    evaluator.accumulate()
    return _report(dataset, detections, evaluator, max_dets, ids)


def coco_max_dets(max_dets: int) -> list[int]:
    """COCO's ``[1, 10, 100]``, extended by ``max_dets`` when it is larger (AP is read at the last)."""
    return sorted({1, 10, COCO_MAX_DETS, max_dets} - {m for m in (1, 10, COCO_MAX_DETS) if m > max_dets})


class CocoIds:
    """The integer image and category ids COCO needs, for one dataset (see the module docstring)."""

    def __init__(self, dataset: DetectionDataset) -> None:
        self.image = _integer_ids([r.image_id for r in dataset.images], "image")
        self.category = _integer_ids(list(dataset.classes.ids), "category")

    def ground_truth(self, dataset: DetectionDataset) -> dict[str, Any]:
        """The dataset as an in-memory COCO instances document."""
        images, annotations = [], []
        for record in dataset.images:
            image_id = self.image[record.image_id]
            images.append({"id": image_id, "width": record.width or 0, "height": record.height or 0})
            for box, category, crowd in zip(
                record.boxes.tolist(), record.category_ids.tolist(), _crowd(record), strict=True
            ):
                x1, y1, x2, y2 = box
                annotations.append(
                    {
                        "id": len(annotations) + 1,  # COCO's matcher reads id 0 as "unmatched"
                        "image_id": image_id,
                        "category_id": self._category(category, f"image {record.image_id!r}"),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": int(crowd),
                    }
                )
        categories = [
            {"id": self.category[cid], "name": name}
            for cid, name in zip(dataset.classes.ids, dataset.classes.names, strict=True)
        ]
        return {"images": images, "annotations": annotations, "categories": categories}

    def results(self, detections: Sequence[Detections], ground_truth: dict[str, Any]) -> dict[str, Any]:
        """Detections as a COCO result set (what ``COCO.loadRes`` builds for boxes, without its
        per-box polygon, which box evaluation never reads)."""
        annotations = []
        for found in detections:
            if found.image_id not in self.image:
                raise UsageError(
                    f"detections name image {found.image_id!r}, which is not in the dataset "
                    f"({len(self.image)} images); evaluate detections on the dataset they were made on"
                )
            image_id = self.image[found.image_id]
            for box, score, category in zip(
                found.boxes.tolist(), found.scores.tolist(), found.category_ids.tolist(), strict=True
            ):
                x1, y1, x2, y2 = box
                w, h = x2 - x1, y2 - y1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": self._category(
                            category, f"the detections of image {found.image_id!r}"
                        ),
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "score": score,
                        "iscrowd": 0,
                    }
                )
        return {
            "images": ground_truth["images"],
            "categories": ground_truth["categories"],
            "annotations": annotations,
        }

    def _category(self, category: DatasetId, where: str) -> int:
        try:
            return self.category[category]
        except KeyError:
            known = ", ".join(repr(c) for c in self.category)
            raise UsageError(
                f"{where} has category id {category!r}, which the class map does not have (it has {known}); "
                "`headfit data check` lists such annotations"
            ) from None


def _integer_ids(ids: list[DatasetId], what: str) -> dict[DatasetId, int]:
    """Integer ids as they are; otherwise 1.. in sorted order of the ids' text."""
    if len(set(ids)) != len(ids):
        repeated = sorted({str(i) for i in ids if ids.count(i) > 1})[:5]
        raise UsageError(f"the dataset repeats {what} ids ({', '.join(repeated)}); each must be unique")
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        return {i: int(i) for i in ids}
    return {i: n for n, i in enumerate(sorted(ids, key=str), start=1)}


def _crowd(record: Any) -> list[bool]:
    crowd = record.crowd.tolist() if len(record.crowd) == record.num_boxes else []
    return crowd or [False] * record.num_boxes


def _silent(*args: Any, **kwargs: Any) -> None:
    """faster-coco-eval's progress lines are not for headfit's output."""


def _report(
    dataset: DetectionDataset, detections: list[Detections], evaluator: Any, max_dets: int, ids: CocoIds
) -> EvalReport:
    params = evaluator.params
    # COCO orders categories by their (integer) id; the report follows the class map's order
    order = [params.catIds.index(ids.category[cid]) for cid in dataset.classes.ids]
    precision = np.asarray(evaluator.eval["precision"])[:, :, order]  # [T, R, K, A, M]
    recall = np.asarray(evaluator.eval["recall"])[:, order]  # [T, K, A, M]
    iou = np.asarray(params.iouThrs)
    last = params.maxDets.index(max_dets)
    hundred = params.maxDets.index(COCO_MAX_DETS) if COCO_MAX_DETS in params.maxDets else last
    at_50, at_75 = _iou_index(iou, 0.5), _iou_index(iou, 0.75)
    area = {label: params.areaRngLbl.index(label) for label in ("all", "small", "medium", "large")}
    everything = precision[:, :, :, area["all"], last]  # [T, R, K]
    counts = _counts(dataset, detections)
    per_class = [
        ClassAP(
            name=name,
            id=cid,
            AP=_mean(everything[:, :, k]),
            AP50=_mean(everything[at_50, :, k]),
            ground_truth=counts[cid][0],
            detections=counts[cid][1],
        )
        for k, (cid, name) in enumerate(zip(dataset.classes.ids, dataset.classes.names, strict=True))
    ]
    return EvalReport(
        AP=_mean(everything),
        AP50=_mean(everything[at_50]),
        AP75=_mean(everything[at_75]),
        APs=_mean(precision[:, :, :, area["small"], last]),
        APm=_mean(precision[:, :, :, area["medium"], last]),
        APl=_mean(precision[:, :, :, area["large"], last]),
        AR100=_mean(recall[:, :, area["all"], hundred]),
        AR_max=_mean(recall[:, :, area["all"], last]) if max_dets > COCO_MAX_DETS else None,
        per_class=per_class,
        max_dets=max_dets,
        max_ground_truth=most_boxes(dataset, per_class=True),
        images=len(dataset.images),
        detections=sum(len(d) for d in detections),
        precision=everything,
        iou_thresholds=iou,
        recall_thresholds=np.asarray(params.recThrs),
    )


def _iou_index(thresholds: np.ndarray, value: float) -> int:
    return int(np.flatnonzero(np.isclose(thresholds, value))[0])


def _mean(values: np.ndarray) -> float | None:
    """COCO's summary: the mean over entries that are not -1 (None when all are)."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else None


def _counts(dataset: DetectionDataset, detections: list[Detections]) -> dict[DatasetId, tuple[int, int]]:
    """Per class: non-crowd ground-truth boxes and detections."""
    truth = dict.fromkeys(dataset.classes.ids, 0)
    for record in dataset.images:
        for category, crowd in zip(record.category_ids.tolist(), _crowd(record), strict=True):
            if not crowd and category in truth:
                truth[category] += 1
    found = dict.fromkeys(dataset.classes.ids, 0)
    for d in detections:
        for category in d.category_ids.tolist():
            if category in found:
                found[category] += 1
    return {cid: (truth[cid], found[cid]) for cid in dataset.classes.ids}
