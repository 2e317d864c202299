"""Checks of a detection batch's targets against the model's heads (labels, boxes, keypoints).

torchvision checks little itself: it rejects boxes that are not ``[N, 4]`` and degenerate boxes, but a
label with no column fails deep in the loss (``Target 5 is out of bounds`` on CPU, a device-side assert
on CUDA), and label 0 in an R-CNN/SSD target is silently trained as background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from headfit.diagnosis import Cause
from headfit.families.base import Evidence

if TYPE_CHECKING:
    from torch import nn

    from headfit.families.torchvision_detection import DetectionFamily


def target_evidence(family: DetectionFamily, model: nn.Module, targets: Any) -> Evidence:
    evidence = Evidence()
    if not isinstance(targets, (list, tuple)):
        return evidence
    for i, target in enumerate(targets):
        if not isinstance(target, dict):
            continue
        _check_labels(family, model, i, target.get("labels"), evidence)
        _check_boxes(i, target.get("boxes"), evidence)
        _check_keypoints(model, i, target.get("keypoints"), evidence)
    return evidence


def _check_labels(family: DetectionFamily, model: nn.Module, i: int, labels: Any, evidence: Evidence) -> None:
    if not isinstance(labels, torch.Tensor) or labels.numel() == 0 or labels.is_meta:
        return
    outputs = family.head_outputs(model)
    bg = family.counts_background
    low, high = int(labels.min()), int(labels.max())
    valid = f"1..{outputs - 1} (0 is the background)" if bg else f"0..{outputs - 1}"
    evidence.facts.append(
        f"targets[{i}]['labels'] range from {low} to {high}; the head has {outputs} columns"
    )
    if high >= outputs or low < 0:
        bad = high if high >= outputs else low
        evidence.causes.append(
            Cause(
                summary=f"targets[{i}] has label {bad} but the head has {outputs} classes: valid labels are {valid}",
                confidence=0.95,
                attribute="labels",
                fix=f"keep labels in {valid}, or re-head for more classes: "
                f"`headfit.adapt(model, {high if bg else high + 1})`",
            )
        )
    elif bg and low == 0:
        evidence.causes.append(
            Cause(
                summary=f"targets[{i}] uses label 0, which {type(model).__name__} treats as the background: "
                "those objects are trained as background and never detected",
                confidence=0.6,
                attribute="labels",
                fix="shift labels to start at 1: `target['labels'] = target['labels'] + 1`",
            )
        )


def _check_boxes(i: int, boxes: Any, evidence: Evidence) -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.is_meta:
        return
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        fix = "torch.zeros((0, 4))" if boxes.numel() == 0 else "boxes.reshape(-1, 4)"
        evidence.causes.append(
            Cause(
                summary=f"targets[{i}]['boxes'] has shape {list(boxes.shape)}; detection targets need [N, 4]"
                + (" (an image without objects still needs shape [0, 4])" if boxes.numel() == 0 else ""),
                confidence=0.95,
                attribute="boxes",
                fix=f"target['boxes'] = {fix}",
            )
        )
        return
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bool(bad.any()):
        first = [round(v, 2) for v in boxes[bad][0].tolist()]
        if only_zero_size(boxes, bad):
            evidence.causes.append(
                Cause(
                    summary=f"targets[{i}] has {int(bad.sum())} box(es) of zero width or height, e.g. {first}: "
                    "the other boxes are valid x1, y1, x2, y2, so these are empty annotations, not another format",
                    confidence=0.85,
                    attribute="boxes",
                    fix=f"{ZERO_SIZE_FILTER.format(t='target')}  # in the dataset, before returning the target",
                )
            )
            return
        evidence.causes.append(
            Cause(
                summary=f"targets[{i}] has {int(bad.sum())} box(es) with x2 <= x1 or y2 <= y1, e.g. {first}: "
                "torchvision boxes are (x1, y1, x2, y2), these look like (x, y, w, h)",
                confidence=0.9,
                attribute="boxes",
                fix="target['boxes'] = torchvision.ops.box_convert(target['boxes'], 'xywh', 'xyxy')",
            )
        )


ZERO_SIZE_FILTER = (
    'keep = ({t}["boxes"][:, 2:] > {t}["boxes"][:, :2]).all(1); '
    '{t}["boxes"], {t}["labels"] = {t}["boxes"][keep], {t}["labels"][keep]'
)


def only_zero_size(boxes: torch.Tensor, bad: torch.Tensor) -> bool:
    """Whether the degenerate boxes are all flat (x2 == x1 or y2 == y1) and no box is inverted.

    Boxes given as x, y, w, h come out inverted (x2 < x1) for most objects away from the origin; a flat box
    among valid ones is an empty annotation (a zero-size object, or one clipped to the image border).
    """
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    return not bool(inverted.any()) and bool((~bad).any())


def _check_keypoints(model: nn.Module, i: int, keypoints: Any, evidence: Evidence) -> None:
    predictor = getattr(getattr(model, "roi_heads", None), "keypoint_predictor", None)
    if predictor is None or not isinstance(keypoints, torch.Tensor):
        return
    expected = predictor.kps_score_lowres.out_channels
    if keypoints.ndim == 3 and keypoints.shape[1:] == (expected, 3):
        return
    evidence.causes.append(
        Cause(
            summary=f"targets[{i}]['keypoints'] has shape {list(keypoints.shape)}; the keypoint predictor "
            f"needs [N, {expected}, 3] (x, y, visibility)",
            confidence=0.9,
            module="roi_heads.keypoint_predictor",
            attribute="keypoints",
            fix=f"give {expected} keypoints per object, or re-head: "
            f"`headfit.adapt(model, K, num_keypoints={keypoints.shape[1] if keypoints.ndim == 3 else 'N'})`",
        )
    )
