"""``fingerprint(dataset)``: a stable hash of what training depends on.

A resumed run refuses data whose fingerprint changed, and DDP ranks compare theirs before the first
step. It covers image ids, file names (relative to the source, so a moved dataset keeps its
fingerprint), sizes, boxes, labels, crowd flags and the class map; not mtimes or absolute paths.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from headfit.datasets.records import DetectionDataset


def fingerprint(dataset: DetectionDataset) -> str:
    """``sha256:`` and 16 hex digits; equal for equal data, whatever machine read it."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.classes.to_dict(), sort_keys=True, default=str).encode())
    root = (
        os.path.dirname(os.path.abspath(dataset.source)) if dataset.source.is_file() else str(dataset.source)
    )
    for record in dataset.images:
        name = os.path.relpath(os.path.abspath(record.file), root).replace(os.sep, "/")
        head = json.dumps(
            [str(record.image_id), type(record.image_id).__name__, name, record.width, record.height]
        )
        digest.update(head.encode())
        digest.update(np.ascontiguousarray(record.boxes, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(record.category_ids, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(record.crowd, dtype=bool).tobytes())
    return "sha256:" + digest.hexdigest()[:16]
