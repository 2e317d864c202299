"""Detection, the first training task: torchvision-style detectors on a ``DetectionDataset``.

The data path is torchvision's detection reference done with ``transforms.v2``: DataLoader workers
decode each image with ``headfit.datasets.decode_image``, wrap it as ``tv_tensors.Image`` with its
boxes as ``tv_tensors.BoundingBoxes`` (and instance masks as ``tv_tensors.Mask``), flip it, jitter its
scale where the family jitters in the data, drop boxes the transforms made degenerate
(``SanitizeBoundingBoxes``) and hand float images and plain-tensor targets to the model. Where the
family jitters the scale through the model's own resize (every multi-scale torchvision detector),
the train-time sizes are set on the model for the epoch and the nominal size is put back for
validation and saving. Labels are the class map's contiguous index plus the family's background
offset; crowd boxes are left out of training, as torchvision's reference does.

Validation is ``headfit.evaluation.detect`` + ``evaluate_detections``: the one mAP engine that
``headfit evaluate`` uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.diagnosis import Cause
from headfit.errors import HeadfitError, UsageError
from headfit.families.base import Family, ImageSize
from headfit.train.metrics import MetricsLog
from headfit.train.sampler import GroupedBatchSampler, aspect_ratio_groups
from headfit.train.task import Batch, BatchEvidence
from headfit.train.world import World

SCALES = (0.75, 1.25)  # the scale jitter: the nominal size times 0.75 .. 1.25
SMALL_BOX = 2.0  # a side below this many pixels (as the model sees the image) is near-degenerate
PLOTS = "plots"


@dataclass
class DetectionSetup:
    """What the detection task trains on and how (resolved by ``headfit.train.setup``)."""

    spec: str  # the MODEL spec, written to the checkpoints' sidecars
    family: Family
    train: DetectionDataset
    val: DetectionDataset
    batch_size: int  # images per step over all ranks (each rank takes batch_size / world_size)
    size: ImageSize  # the nominal size: validation, checkpoints
    image_size: int | None  # what the checkpoints record (--imgsz), None for the builder's default
    device: str
    workers: int = 0
    seed: int = 0
    flip: bool = True
    jitter: bool = True
    masks: bool = False  # Mask R-CNN: instance masks from the COCO polygons / RLE
    max_dets: int | None = None  # COCO maxDets for validation (None: the eval engine's choice)


class DetectionSamples(Dataset):
    """Map-style dataset keyed by ``(index, seed)``: the seed fixes the sample's augmentation."""

    def __init__(
        self, records: Sequence[ImageRecord], classes: ClassMap, offset: int, transform: Any, masks: bool
    ) -> None:
        self.records, self.classes, self.offset = list(records), classes, offset
        self.transform, self.masks = transform, masks

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        from torchvision import tv_tensors

        from headfit.datasets import decode_image

        index, seed = key
        record = self.records[index]
        try:
            image = decode_image(record.file)
        except UsageError as exc:  # a worker's exception loses its type; headfit's words survive this way
            raise DecodeFailed(str(exc)) from None
        height, width = image.shape[-2:]
        keep = ~np.asarray(record.crowd, dtype=bool) if len(record.crowd) else np.ones(record.num_boxes, bool)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.as_tensor(record.boxes[keep], dtype=torch.float32).reshape(-1, 4),
                format="XYXY",
                canvas_size=(height, width),
            ),
            "labels": torch.as_tensor(
                [self.classes.index_of(c) + self.offset for c in record.category_ids[keep]], dtype=torch.int64
            ),
        }
        if self.masks:
            target["masks"] = tv_tensors.Mask(_instance_masks(record, keep, height, width))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image, target = self.transform(tv_tensors.Image(image), target)
        return image, target, record.image_id


class DecodeFailed(RuntimeError):
    """An image a worker could not decode; its message is headfit's one paragraph about the file."""


class DataStopped(HeadfitError):
    """Training met data it cannot use (an image that does not decode): exit 1, like a pre-flight find."""

    exit_code = 1


def train_transform(flip: bool, jitter_steps: list[Any]) -> Any:
    """flip (p=0.5) and the family's data-side scale jitter on uint8, then float 0..1, then
    ``SanitizeBoundingBoxes`` (boxes under 1 px, and their labels and masks, are dropped)."""
    from torchvision.transforms import v2

    steps = [*([v2.RandomHorizontalFlip(0.5)] if flip else []), *jitter_steps]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes(min_size=1), v2.ToPureTensor()]
    return v2.Compose(steps)


def _instance_masks(record: ImageRecord, keep: np.ndarray, height: int, width: int) -> torch.Tensor:
    """``uint8 [N, H, W]`` from the COCO polygons / RLE of the kept annotations (faster-coco-eval)."""
    from faster_coco_eval.core import mask as coco_mask

    masks = []
    for segmentation, kept in zip(record.segmentations or [], keep, strict=False):
        if not kept:
            continue
        if not segmentation:
            masks.append(np.zeros((height, width), dtype=np.uint8))
            continue
        if isinstance(segmentation, list):  # polygons
            rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        masks.append(np.asarray(coco_mask.decode(rle), dtype=np.uint8).reshape(height, width))
    if not masks:
        return torch.zeros((0, height, width), dtype=torch.uint8)
    return torch.from_numpy(np.stack(masks))


def _collate(samples: list[tuple[Any, Any, Any]]) -> tuple[list, list, list]:
    images, targets, ids = zip(*samples, strict=True)
    return list(images), list(targets), list(ids)


class DetectionTask:
    name = "detection"
    primary_metric = "val_AP"
    metric_columns = ("val_AP", "val_AP50", "val_AP75")

    def __init__(self, model: nn.Module, setup: DetectionSetup, world: World | None = None) -> None:
        self.model, self.setup, self.world = model, setup, world or World()
        self.family = setup.family
        self.device = torch.device(setup.device)
        records = setup.train.images
        self.sampler = GroupedBatchSampler(
            aspect_ratio_groups([(r.width, r.height) for r in records]),
            setup.batch_size,
            seed=setup.seed,
            rank=self.world.rank,
            world_size=self.world.world_size,
        )
        self.train_size = (
            self.family.jittered_size(model, setup.size, SCALES) if setup.jitter else None
        ) or setup.size
        jitter_steps = self.family.jitter_transforms(model, SCALES) if setup.jitter else []
        self.samples = DetectionSamples(
            records,
            setup.train.classes,
            int(self.family.counts_background),
            train_transform(setup.flip, jitter_steps),
            setup.masks,
        )
        self.loader = DataLoader(
            self.samples,
            batch_sampler=self.sampler,
            num_workers=setup.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=setup.workers > 0,
            generator=torch.Generator().manual_seed(setup.seed),  # the global RNG stays the loop's own
        )
        self.report: Any = None  # the last validation's EvalReport and detections, for the plots
        self.detections: list[Any] = []

    # -- the Task protocol ---------------------------------------------------------------------------

    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch()

    def batches(self, epoch: int, start: int) -> Iterator[Batch]:
        self.family.set_image_size(self.model, self.train_size)
        self.sampler.set_epoch(epoch, start)
        try:
            for images, targets, ids in self.loader:
                yield Batch(inputs=images, targets=targets, size=len(images), meta=ids)
        except DecodeFailed as exc:
            raise DataStopped(_worker_headfit_message(exc) or str(exc)) from None
        except HeadfitError:
            raise
        except Exception as exc:  # a worker's error arrives as its traceback text: keep headfit's words
            paragraph = _worker_headfit_message(exc)
            if paragraph is None:
                raise
            raise DataStopped(paragraph) from None
        finally:
            self.family.set_image_size(self.model, self.setup.size)

    def loss_terms(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        device = self.device
        images = [image.to(device, non_blocking=True) for image in batch.inputs]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in batch.targets]
        return self.family.loss_terms(model, model(images, targets))

    def validate(self, model: nn.Module) -> dict[str, float]:
        from headfit.evaluation import evaluate_detections

        self.family.set_image_size(model, self.setup.size)
        self.detections = self._detect_sharded(model)
        self.report = evaluate_detections(self.setup.val, self.detections, max_dets=self.setup.max_dets)
        return {
            "val_AP": _number(self.report.AP),
            "val_AP50": _number(self.report.AP50),
            "val_AP75": _number(self.report.AP75),
        }

    def _detect_sharded(self, model: nn.Module) -> list[Any]:
        """Each rank detects every ``world_size``-th val image; the detections of all ranks, once per
        image and in the data's order (deduplicated by image id, so no image counts twice)."""
        from dataclasses import replace

        from headfit.evaluation import detect

        val, world = self.setup.val, self.world
        shard = replace(val, images=val.images[world.rank :: world.world_size])
        per_rank = max(1, self.setup.batch_size // world.world_size)

        def work() -> list[Any]:
            if not shard.images:  # fewer val images than ranks
                return []
            return detect(model, shard, batch_size=per_rank, device=self.setup.device, workers=self.setup.workers)

        by_id = {d.image_id: d for found in world.everywhere(work) for d in found}
        return [by_id[r.image_id] for r in val.images if r.image_id in by_id]

    def save_model(self, model: nn.Module, path: Path, extra: dict[str, Any]) -> None:
        from headfit.checkpoint import save_detector

        self.family.set_image_size(model, self.setup.size)
        save_detector(
            model,
            path,
            spec=self.setup.spec,
            classes=self.setup.train.classes,
            image_size=self.setup.image_size,
            extra=extra,
        )

    def after_epoch(self, model: nn.Module, run: Path, log: MetricsLog, improved: bool) -> None:
        from headfit.train.plots import plot_curves

        plot_curves(log, run / PLOTS, terms=[c for c in log.columns() if _is_loss_column(c)])
        if improved and self.report is not None:
            from headfit.evaluation.plots import draw_predictions_grid, plot_pr_curves

            plot_pr_curves(self.report, run / PLOTS / "pr_curves.png")
            draw_predictions_grid(self.setup.val, self.detections, run / PLOTS / "val_grid.png")

    def batch_evidence(self, batch: Batch) -> BatchEvidence:
        return batch_evidence(self.setup.train, batch, self.family)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _is_loss_column(column: str) -> bool:
    return column not in ("epoch", "lr", "seconds") and not column.startswith("val_")


def _worker_headfit_message(exc: Exception) -> str | None:
    """The paragraph of a headfit error raised in a DataLoader worker (torch re-raises it as text)."""
    text = str(exc)
    if "DataLoader worker" not in text:
        return None
    found = re.findall(r"(?:headfit\.errors\.\w+|DecodeFailed): (.+)", text)
    return found[-1].strip() if found else None


# -- the evidence of a batch whose loss was not finite ------------------------------------------------


def batch_evidence(dataset: DetectionDataset, batch: Batch, family: Family) -> BatchEvidence:
    """The batch's image ids and boxes (as annotated, and as the model got them), and the boxes that
    can make a detection loss blow up: under ``SMALL_BOX`` px, or outside the image."""
    by_id = {r.image_id: r for r in dataset.images}
    facts, suspects = [], []
    offset = int(family.counts_background)
    for image_id, target in zip(batch.meta, batch.targets, strict=True):
        record = by_id.get(image_id)
        boxes = target["boxes"].detach().cpu().reshape(-1, 4)
        shown = ", ".join(_box_text(b) for b in boxes[:4].tolist()) + (" ..." if len(boxes) > 4 else "")
        where = f" ({record.file.name})" if record is not None else ""
        facts.append(f"image {image_id!r}{where}: {len(boxes)} box(es) as trained: {shown or 'none'}")
        sides = (boxes[:, 2:] - boxes[:, :2]).min(dim=1).values if len(boxes) else torch.zeros(0)
        for box, side, label in zip(boxes.tolist(), sides.tolist(), target["labels"].tolist(), strict=True):
            if side < SMALL_BOX:
                suspects.append((image_id, box, f"{side:.2g} px", label - offset))
        if record is not None:
            suspects += _outside(record)
    return BatchEvidence(facts=facts, causes=_box_causes(suspects, dataset))


def _box_text(box: list[float]) -> str:
    return "[" + ", ".join(f"{v + 0.0:.1f}" for v in box) + "]"  # + 0.0: no "-0.0"


def _outside(record: ImageRecord) -> list[tuple[Any, list[float], str, int]]:
    if record.width is None or record.height is None or not record.num_boxes:
        return []
    b = record.boxes
    out = (b[:, 0] < -1) | (b[:, 1] < -1) | (b[:, 2] > record.width + 1) | (b[:, 3] > record.height + 1)
    return [
        (record.image_id, b[i].tolist(), f"outside the {record.width}x{record.height} image", -1)
        for i in np.flatnonzero(out)
    ]


def _box_causes(suspects: list[tuple[Any, list[float], str, int]], dataset: DetectionDataset) -> list[Cause]:
    if not suspects:
        return []
    shown = "; ".join(f"image {i!r} box {_box_text(b)} ({why})" for i, b, why, _ in suspects[:3])
    more = f" and {len(suspects) - 3} more" if len(suspects) > 3 else ""
    return [
        Cause(
            summary=f"a degenerate box in the batch: {shown}{more}; its regression target is huge or undefined",
            confidence=0.85,
            attribute="boxes",
            fix=f"fix or drop those annotations: `headfit data check {dataset.source} --fix CLEAN.json` "
            "writes a cleaned copy, then train on it",
        )
    ]
