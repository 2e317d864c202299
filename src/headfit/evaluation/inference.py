"""Batched eval-mode inference of a torchvision-style detector: images in, ``Detections`` out.

``detect`` is what ``headfit evaluate`` and training's per-epoch validation run before
``evaluate_detections``, and what ``headfit predict`` runs on files. Images are decoded by
``headfit.datasets.decode_image`` (EXIF orientation applied, any format), optionally in DataLoader
workers, and given to the model as float ``[3, H, W]`` in 0..1 at their own size: the model's
transform resizes them and maps the boxes back to the original pixels. A model label becomes a
dataset category id through the class map and the family's background offset (R-CNN and SSD count
a background class at label 0, RetinaNet and FCOS do not).

torch is imported when a function runs, not with this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headfit.datasets.records import ClassMap, DetectionDataset
from headfit.errors import UsageError
from headfit.evaluation.coco import Detections

if TYPE_CHECKING:
    import torch
    from torch import nn


def detect(
    model: nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 4,
    device: str = "cpu",
    score_threshold: float = 0.0,
    workers: int = 0,
) -> list[Detections]:
    """The model's detections on every image of ``dataset``, in its order and its category ids.

    The model runs in eval mode under ``torch.inference_mode`` on ``device`` and is put back in the
    mode it came in (training's validation calls this between epochs). Detections scoring below
    ``score_threshold`` are dropped (the model's own score threshold applies first).
    """
    files = [(record.image_id, record.file) for record in dataset.images]
    return detect_files(
        model,
        files,
        dataset.classes,
        batch_size=batch_size,
        device=device,
        score_threshold=score_threshold,
        workers=workers,
    )


def detect_files(
    model: nn.Module,
    files: Sequence[tuple[Any, Path]],
    classes: ClassMap,
    *,
    batch_size: int = 4,
    device: str = "cpu",
    score_threshold: float = 0.0,
    workers: int = 0,
) -> list[Detections]:
    """``detect`` on ``(image_id, path)`` pairs, labels mapped through ``classes``."""
    import torch

    if batch_size < 1:
        raise UsageError(f"--batch must be at least 1, got {batch_size}")
    offset = label_offset(model, classes)
    ids = np.asarray(classes.ids, dtype=None if all(isinstance(i, int) for i in classes.ids) else object)
    was_training = model.training
    model.eval().to(device)
    found: list[Detections] = []
    try:
        with torch.inference_mode():
            for batch in _batches(files, batch_size, workers, device):
                outputs = model([image for _, image in batch])
                found += [
                    _detections(image_id, output, ids, offset, score_threshold)
                    for (image_id, _), output in zip(batch, outputs, strict=True)
                ]
    finally:
        model.train(was_training)
    return found


def label_offset(model: nn.Module, classes: ClassMap) -> int:
    """The model label of class index 0 (1 where the family counts a background class), after
    checking that the heads predict exactly the class map's classes."""
    from headfit.families import family_for

    family = family_for(model)
    predicted = family.num_classes(model)
    if predicted is not None and predicted != len(classes):
        raise UsageError(
            f"the model predicts {predicted} classes but the data has {len(classes)} "
            f"({', '.join(classes.names)}); evaluate a model trained on this data, or re-head it with "
            f"`headfit adapt MODEL --num-classes {len(classes)}` and train it"
        )
    return int(family.counts_background)


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when there is one, else the CPU; anything else must be a device torch knows."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(
            f"--device {device!r} is not a device torch knows ({exc}); use cpu, cuda, cuda:N or auto"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device} asks for CUDA, but torch sees no CUDA device here; use --device cpu"
        )
    return str(resolved)


def _detections(
    image_id: Any, output: dict[str, Any], ids: np.ndarray, offset: int, threshold: float
) -> Detections:
    scores = output["scores"].float().cpu().numpy()
    keep = scores >= threshold
    labels = output["labels"].cpu().numpy()[keep] - offset
    if labels.size and (labels.min() < 0 or labels.max() >= len(ids)):
        bad = int(labels.min() if labels.min() < 0 else labels.max()) + offset
        raise UsageError(
            f"the model returned label {bad} on image {image_id!r}, outside its {len(ids)} classes "
            f"(labels {offset}..{offset + len(ids) - 1}); its heads and its class map disagree"
        )
    return Detections(image_id, output["boxes"].float().cpu().numpy()[keep], scores[keep], ids[labels])


class _Images:
    """A map-style dataset of decoded images: ``(position, float image)`` or ``(position, error text)``,
    so that a file that cannot be decoded in a worker comes back as headfit's own message."""

    def __init__(self, files: Sequence[tuple[Any, Path]]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        from headfit.datasets import decode_image

        try:
            return index, decode_image(self.files[index][1])
        except UsageError as exc:
            return index, str(exc)


def _batches(
    files: Sequence[tuple[Any, Path]], batch_size: int, workers: int, device: str
) -> Iterator[list[tuple[Any, torch.Tensor]]]:
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Images(files),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        pin_memory=str(device).startswith("cuda"),
    )
    for batch in loader:
        images = []
        for index, image in batch:
            if isinstance(image, str):
                raise UsageError(image)
            images.append((files[index][0], image.to(device, non_blocking=True).float().div_(255)))
        yield images
