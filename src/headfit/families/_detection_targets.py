"""Checks of a detection batch's targets against the model's heads (labels, boxes, keypoints).

torchvision checks little itself: it rejects boxes that are not ``[N, 4]`` and degenerate boxes, but a
label with no column fails deep in the loss (``Target 5 is out of bounds`` on CPU, a device-side assert
on CUDA), and label 0 in an R-CNN/SSD target is silently trained as background.

This is the one place that decides whether a detection target is valid: ``DetectionFamily.check_targets``
(the live hooks give it the targets found in the failing frames) and ``DetectionFamily.explain_failure``
(a label read from the message) both come here. Each finding gives exactly one cause for the whole
batch, with the class count computed once by the family (``Family.classes_for_label``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from headfit.diagnosis import Cause
from headfit.families._facts import RCNN
from headfit.families.base import Evidence

if TYPE_CHECKING:
    from headfit.families.torchvision_detection import DetectionFamily

ZERO_SIZE_FILTER = (
    'keep = ({t}["boxes"][:, 2:] > {t}["boxes"][:, :2]).all(1); '
    '{t}["boxes"], {t}["labels"] = {t}["boxes"][keep], {t}["labels"][keep]'
)
_OUT_OF_BOUNDS = re.compile(r"(?:Target|index) (-?\d+) is out of bounds")


def target_evidence(family: DetectionFamily, model: nn.Module, targets: Any, name: str) -> Evidence:
    """Labels, boxes and keypoints of a list of target dicts, one cause per finding for the batch."""
    evidence = Evidence()
    if not isinstance(targets, (list, tuple)):
        return evidence
    dicts = [(i, t) for i, t in enumerate(targets) if isinstance(t, dict)]
    _check_labels(family, model, dicts, name, evidence)
    _check_boxes(dicts, name, evidence)
    _check_keypoints(model, dicts, name, evidence)
    return evidence


def message_label_cause(family: DetectionFamily, model: nn.Module, message: str) -> Cause | None:
    """``Target 5 is out of bounds`` / ``index 5 is out of bounds``: a label the head has no column for."""
    match = _OUT_OF_BOUNDS.search(message)
    if match is None or "for dimension 0 " in message:  # dim 0 indexes rows (boxes, proposals), not classes
        return None
    label = int(match.group(1))
    return label_cause(family, model, f"a target label is {label}", label, label)


def label_cause(family: DetectionFamily, model: nn.Module, subject: str, low: int, high: int) -> Cause | None:
    """The one cause for labels ``low..high`` that the head cannot take (None when it takes them all).

    ``subject`` says where the labels are (``targets[0] has label 7``). The fix re-heads for the class
    count the highest label needs: ``max label + 1``, or ``max label`` where 0 is the background.
    """
    classes = family.num_classes(model)
    outputs = family.outputs_for(classes)
    valid = family.valid_labels(classes) if classes > 0 else "none (the head has only the background column)"
    if 0 <= low and high < outputs:
        return None
    if family.counts_background and low >= 0 and high == outputs:
        return _background_forgotten(family, model, subject, high, outputs)
    head = (
        f"{outputs} outputs ({classes} classes + the background)"
        if family.counts_background
        else (f"{classes} classes")
    )
    summary = f"{subject} but the head has {head}: valid labels are {valid}"
    if high < outputs:  # only negative labels
        return Cause(summary, 0.9, None, "labels", f"keep labels in {valid}: negative labels are not classes")
    needed = family.classes_for_label(high)
    fix = f"keep labels in {valid}, or re-head for {needed} classes: `headfit.adapt(model, {needed})`"
    return Cause(summary, 0.95, None, "labels", fix)


def _background_forgotten(
    family: DetectionFamily, model: nn.Module, subject: str, high: int, outputs: int
) -> Cause:
    """Labels 1..K on a head of K outputs: the model was built with ``num_classes=K``, the count of
    object classes, but this head's ``num_classes`` counts the background too (K + 1)."""
    summary = (
        f"{subject}, and the head has exactly {outputs} outputs: `num_classes={outputs}` was given as the "
        f"number of object classes, but {type(model).__name__}'s `num_classes` counts the background too "
        f"({_classes(high)} + the background = {high + 1})"
    )
    fix = (
        f"build it with num_classes={high + 1}  # your {_classes(high)} + the background; "
        f"or re-head it: `headfit.adapt(model, {family.classes_for_label(high)})`"
    )
    return Cause(summary, 0.97, family.class_head or None, "num_classes", fix)


def _classes(count: int) -> str:
    return f"{count} class" if count == 1 else f"{count} classes"


@dataclass
class _Labels:
    image: int  # the first image with a label out of range
    low: int
    high: int


def _check_labels(
    family: DetectionFamily, model: nn.Module, dicts: list[tuple[int, dict]], name: str, evidence: Evidence
) -> None:
    ranges = [(i, _label_range(t.get("labels"))) for i, t in dicts]
    ranges = [(i, r) for i, r in ranges if r is not None]
    if not ranges:
        return
    low, high = min(r[0] for _, r in ranges), max(r[1] for _, r in ranges)
    classes = family.num_classes(model)
    outputs = family.outputs_for(classes)
    bad = next((i for i, (lo, hi) in ranges if lo < 0 or hi >= outputs), None)
    if bad is not None:
        image_low, image_high = dict(ranges)[bad]
        value = image_high if image_high >= outputs else image_low
        cause = label_cause(family, model, f"{name}[{bad}] has label {value}", low, high)
        batch = f" (the batch: {low} to {high})" if len(ranges) > 1 else ""
        takes = family.valid_labels(classes) if classes > 0 else "none (it has only the background column)"
        evidence.facts.append(
            f'`{name}[{bad}]["labels"]` range from {image_low} to {image_high}{batch}; the head takes labels {takes}'
        )
        evidence.causes.append(cause)
    elif family.counts_background and low == 0:
        first = next(i for i, (lo, _) in ranges if lo == 0)
        evidence.causes.append(
            Cause(
                f"{name}[{first}] uses label 0, which {type(model).__name__} treats as the background: "
                "those objects are trained as background and never detected",
                0.6,
                None,
                "labels",
                f'shift labels to start at 1: `{name}[{first}]["labels"] = {name}[{first}]["labels"] + 1` '
                "(in the dataset, for every target)",
            )
        )


def _label_range(labels: Any) -> tuple[int, int] | None:
    if not isinstance(labels, torch.Tensor) or labels.numel() == 0 or labels.is_meta:
        return None
    return int(labels.min()), int(labels.max())


def _check_boxes(dicts: list[tuple[int, dict]], name: str, evidence: Evidence) -> None:
    """One cause per kind of box mistake (shape, x/y/w/h order, empty boxes), naming its first image."""
    found: dict[str, tuple[list[str], Cause]] = {}
    for i, target in dicts:
        boxes = target.get("boxes")
        if boxes is None or (isinstance(boxes, torch.Tensor) and boxes.is_meta):
            continue
        kind, finding = _box_finding(boxes, f"{name}[{i}]", i)
        if finding is not None and kind not in found:
            found[kind] = finding
    for facts, cause in found.values():
        evidence.facts.extend(facts)
        evidence.causes.append(cause)


def _box_finding(boxes: Any, target: str, i: int) -> tuple[str, tuple[list[str], Cause] | None]:
    if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[-1] != 4:
        return "shape", _box_shape(boxes, target)
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if not bool(bad.any()):
        return "ok", None
    if only_zero_size(boxes, bad):
        return "empty", _zero_size(boxes, bad, target, i)
    return "order", _xywh(boxes, bad, target, i)


def _box_shape(boxes: Any, target: str) -> tuple[list[str], Cause]:
    shape = list(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
    empty = isinstance(boxes, torch.Tensor) and boxes.numel() == 0
    fact = (
        f'`{target}["boxes"]` is {shape}; boxes must be a float tensor of shape [N, 4] '
        "([0, 4] for an image with no objects)"
    )
    if empty:
        fix = f'{target}["boxes"] = torch.zeros((0, 4))  # an image without objects'
    elif isinstance(boxes, torch.Tensor):
        fix = f'{target}["boxes"] = {target}["boxes"].reshape(-1, 4)'
    else:
        fix = f'{target}["boxes"] = torch.as_tensor({target}["boxes"], dtype=torch.float32).reshape(-1, 4)'
    summary = f"{target}['boxes'] has shape {shape}; detection targets need [N, 4]" + (
        " (an image without objects still needs shape [0, 4])" if empty else ""
    )
    return [fact], Cause(summary, 0.95, None, "boxes", fix)


def _xywh(boxes: torch.Tensor, bad: torch.Tensor, target: str, i: int) -> tuple[list[str], Cause]:
    j = int(bad.nonzero()[0])
    box = [round(float(v), 2) for v in boxes[j]]
    x1, y1, x2, y2 = box
    facts = [
        f'`{target}["boxes"][{j}]` is {box}: x2 = {x2:g} <= x1 = {x1:g} or y2 = {y2:g} <= y1 = {y1:g}; '
        f"read as x, y, w, h it is the box [{x1:g}, {y1:g}, {x1 + x2:g}, {y1 + y2:g}]",
        f"{int(bad.sum())} of {len(boxes)} boxes in image {i} have x2 <= x1 or y2 <= y1",
    ]
    summary = (
        f"{target} has {int(bad.sum())} box(es) with x2 <= x1 or y2 <= y1, e.g. {box}: "
        "torchvision boxes are (x1, y1, x2, y2), these look like (x, y, w, h)"
    )
    fix = (
        f'{target}["boxes"] = torchvision.ops.box_convert({target}["boxes"], in_fmt="xywh", out_fmt="xyxy")'
        "  # or convert in the dataset"
    )
    return facts, Cause(summary, 0.9, None, "boxes", fix)


def _zero_size(boxes: torch.Tensor, bad: torch.Tensor, target: str, i: int) -> tuple[list[str], Cause]:
    j = int(bad.nonzero()[0])
    box = [round(float(v), 2) for v in boxes[j]]
    x1, y1, x2, y2 = box
    facts = [
        f'`{target}["boxes"][{j}]` is {box}: width {x2:g} - {x1:g} = {x2 - x1:g}, height {y2:g} - {y1:g} = '
        f"{y2 - y1:g}; no box is inverted, so the format is x1, y1, x2, y2 and this box is empty"
    ]
    summary = (
        f"{int(bad.sum())} of {len(boxes)} boxes in image {i} have zero width or height (empty annotations), "
        f"e.g. {box}: the other boxes are valid x1, y1, x2, y2"
    )
    fix = ZERO_SIZE_FILTER.format(t=target) + "  # or drop them in the dataset"
    return facts, Cause(summary, 0.9, None, "boxes", fix)


def only_zero_size(boxes: torch.Tensor, bad: torch.Tensor) -> bool:
    """Whether the degenerate boxes are all flat (x2 == x1 or y2 == y1) and no box is inverted.

    Boxes given as x, y, w, h come out inverted (x2 < x1) for most objects away from the origin; a flat box
    among valid ones is an empty annotation (a zero-size object, or one clipped to the image border).
    """
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    return not bool(inverted.any()) and bool((~bad).any())


def _check_keypoints(model: nn.Module, dicts: list[tuple[int, dict]], name: str, evidence: Evidence) -> None:
    predictor = getattr(getattr(model, "roi_heads", None), "keypoint_predictor", None)
    if predictor is None:
        return
    expected = predictor.kps_score_lowres.out_channels
    for i, target in dicts:
        keypoints = target.get("keypoints")
        if not isinstance(keypoints, torch.Tensor) or (
            keypoints.ndim == 3 and keypoints.shape[1:] == (expected, 3)
        ):
            continue
        if keypoints.ndim == 2 and keypoints.shape == (expected, 3):
            evidence.causes.append(_keypoints_without_instances(name, i, expected))
            return
        given = keypoints.shape[1] if keypoints.ndim == 3 else "N"
        evidence.causes.append(
            Cause(
                f"{name}[{i}]['keypoints'] has shape {list(keypoints.shape)}; the keypoint predictor "
                f"needs [N, {expected}, 3] (x, y, visibility)",
                0.9,
                RCNN.keypoint_head,
                "keypoints",
                f"give {expected} keypoints per object, or re-head: "
                f"`headfit.adapt(model, K, num_keypoints={given})`",
            )
        )
        return


def _keypoints_without_instances(name: str, i: int, expected: int) -> Cause:
    """[K, 3] keypoints: one object's keypoints without the instance dim ([N, K, 3] with N = 1)."""
    target = f'{name}[{i}]["keypoints"]'
    return Cause(
        f"{name}[{i}]['keypoints'] is [{expected}, 3]: one object's keypoints without the instance dim; "
        f"the keypoint head takes [N, {expected}, 3] (one row of {expected} keypoints per box)",
        0.95,
        RCNN.keypoint_head,
        "keypoints",
        f"{target} = {target}.unsqueeze(0)  # [K, 3] -> [1, K, 3]: one object",
    )
