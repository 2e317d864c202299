"""Training targets in the failing frames, checked by the model's family (``Family.check_targets``):
for torchvision's detectors, labels out of range, boxes that are not x1, y1, x2, y2, keypoints."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from headfit.evidence.base import LiveEvidence, finder, message_is_about, name_of
from headfit.families import family_for
from headfit.scene import Scene

TARGET_CODE = "HF132"  # detection targets that are not x1,y1,x2,y2 boxes with labels in range


@finder(code=TARGET_CODE, priority=40)
def detection_targets(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """The innermost list of target dicts (with ``boxes``) in the frames, against the user's model."""
    targets = _target_lists(scene)
    if not targets or scene.model is None:
        return None
    name = name_of(scene, targets, "targets")
    found = family_for(scene.model).check_targets(scene.model, targets, name=name)
    if not found.facts and not found.causes:
        return None
    labels = {
        int(v) for t in targets if isinstance(t.get("labels"), torch.Tensor) for v in t["labels"].tolist()
    }
    settles = any(c.attribute in ("labels", "num_classes") for c in found.causes) and any(
        message_is_about(exc, label) for label in labels
    )
    return LiveEvidence(found.facts, found.causes, settles=settles)


def _target_lists(scene: Scene) -> list[dict]:
    for frame in reversed(scene.frames):
        for value in frame.f_locals.values():
            if (
                isinstance(value, (list, tuple))
                and value
                and all(isinstance(t, Mapping) and "boxes" in t for t in value)
            ):
                return list(value)
    return []
