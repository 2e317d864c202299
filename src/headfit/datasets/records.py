"""The one in-memory form of a detection dataset, whatever it was read from (COCO, YOLO, VOC, CSV).

Every reader in this package returns a ``DetectionDataset``; ``headfit data check`` lints it and
``headfit train`` / ``evaluate`` consume it. Nothing here imports torch: reading and linting 100,000
annotations must not pay for ``import torch``. Boxes are numpy ``float32 [N, 4]`` in absolute pixel
``x1, y1, x2, y2`` (``[0, 4]`` when an image has none); ids are the dataset's own, so every problem
can be named the way the user's files name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headfit.datasets.headers import ImageHeader
from headfit.datasets.problems import Problem

DatasetId = int | str  # COCO ids are ints; YOLO / VOC / CSV images and classes are named by strings


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


# what an image without annotations holds: one shared array each, not three new arrays for each of
# 10,000 images. Sharing is safe because they are empty: there is no element to write. (They stay
# writable: torch warns on every `torch.as_tensor` of a read-only array.)
NO_BOXES = empty_boxes()
NO_CATEGORIES = np.zeros(0, dtype=np.int64)
NO_CROWD = np.zeros(0, dtype=bool)


@dataclass
class ImageRecord:
    """One image and its annotations, in the dataset's own ids."""

    image_id: DatasetId  # COCO `images[].id`; the file stem (or relative path) for YOLO / VOC / CSV
    file: Path  # resolved path of the image file (it may not exist: `data check` says so)
    width: int | None  # the real size, read from the file header (EXIF orientation applied);
    height: int | None  # None when the file is missing or unreadable
    boxes: np.ndarray = field(default_factory=lambda: NO_BOXES)  # float32 [N, 4], x1 y1 x2 y2 in pixels
    # [N] dataset ids: int64 (COCO, YOLO), or an object array of class names (VOC, CSV, which name classes)
    category_ids: np.ndarray = field(default_factory=lambda: NO_CATEGORIES)
    crowd: np.ndarray = field(default_factory=lambda: NO_CROWD)  # [N], COCO iscrowd
    annotation_ids: list[DatasetId] = field(default_factory=list)  # [N]; COCO ids, or "file:line" / "file#k"
    segmentations: list[Any] | None = None  # [N] COCO polygons / RLE as stored, when the data has masks
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation file claims
    header: ImageHeader | None = None  # what the file's header says (status, mode, EXIF orientation)

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])


@dataclass
class ClassMap:
    """Dataset category id -> name -> contiguous index 0..K-1 (in the order of ``ids``).

    The contiguous index is what a model is trained on (the family adds its background offset); the
    dataset id is what results are reported in (COCO result files, `data check` problems).
    """

    ids: list[DatasetId]
    names: list[str]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.names):
            raise ValueError(f"ClassMap: {len(self.ids)} ids but {len(self.names)} names")
        self._index = {cid: i for i, cid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, category_id: DatasetId) -> int:
        """Contiguous index of a dataset category id (KeyError for an unknown id)."""
        return self._index[category_id]

    def knows(self, category_id: DatasetId) -> bool:
        return category_id in self._index

    def indices(self, category_ids: np.ndarray) -> np.ndarray:
        """Contiguous indices (int64) of an array of dataset ids (KeyError naming an unknown id)."""
        return np.fromiter(
            (self._index[c] for c in category_ids.tolist()), dtype=np.int64, count=len(category_ids)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "names": list(self.names)}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ClassMap:
        return cls(ids=list(document["ids"]), names=[str(n) for n in document["names"]])


@dataclass
class DetectionDataset:
    """A whole split: its images, its class map, where it came from and what reading it noticed."""

    images: list[ImageRecord]
    classes: ClassMap
    source: Path  # the COCO JSON, data.yaml, VOC folder or CSV it was read from
    format: str  # "coco" | "yolo" | "voc" | "csv"
    split: str | None = None  # "train" / "val" where the source names splits
    problems: list[Problem] = field(default_factory=list)  # what reading found it could not represent
    notes: list[str] = field(default_factory=list)  # what reading noticed and handled (a twin file used)

    @property
    def num_annotations(self) -> int:
        return sum(r.num_boxes for r in self.images)
