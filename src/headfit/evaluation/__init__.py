"""Evaluation and prediction: one mAP engine (``evaluate_detections``), batched inference (``detect``),
and the plots of a run (``plots``). ``headfit evaluate``, ``headfit predict`` and training's
validation all go through here.

Importing this package does not import torch; ``detect`` imports it when called.
"""

from __future__ import annotations

from headfit.evaluation.coco import (
    ClassAP,
    Detections,
    EvalReport,
    detections_per_image_for,
    evaluate_detections,
    max_dets_for,
)
from headfit.evaluation.inference import detect

__all__ = [
    "ClassAP",
    "Detections",
    "EvalReport",
    "detect",
    "detections_per_image_for",
    "evaluate_detections",
    "max_dets_for",
]
