"""``DataReport``: what ``data check`` found, as plain data (the terminal and JSON renderers read it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headfit.datasets.problems import Id, Problem


@dataclass
class ClassStats:
    id: Id
    name: str
    index: int  # the contiguous index training uses
    boxes: int
    images: int  # images with at least one box of the class


@dataclass
class DataStats:
    images: int
    annotations: int
    classes: int
    per_class: list[ClassStats]
    boxes_per_image_max: int  # sizes `detections_per_img` and COCO's `maxDets`
    boxes_per_image_p99: int
    boxes_per_image_mean: float
    negatives: int  # images without boxes
    crowd: int
    small: int  # COCO's areas: < 32^2, < 96^2, the rest (box area in pixels)
    medium: int
    large: int
    image_sizes: list[tuple[int, int, int]]  # (width, height, images), the most common first
    smallest: tuple[int, int] | None
    largest: tuple[int, int] | None
    unreadable: int  # images whose size is unknown (missing or unreadable files)
    format: str = ""
    source: str = ""
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "annotations": self.annotations,
            "classes": self.classes,
            "format": self.format,
            "source": self.source,
            "split": self.split,
            "per_class": [vars(c).copy() for c in self.per_class],
            "boxes_per_image": {
                "max": self.boxes_per_image_max,
                "p99": self.boxes_per_image_p99,
                "mean": round(self.boxes_per_image_mean, 3),
            },
            "negatives": self.negatives,
            "crowd": self.crowd,
            "box_sizes": {"small": self.small, "medium": self.medium, "large": self.large},
            "image_sizes": {
                "most_common": [{"width": w, "height": h, "images": n} for w, h, n in self.image_sizes],
                "smallest": list(self.smallest) if self.smallest else None,
                "largest": list(self.largest) if self.largest else None,
                "unknown": self.unreadable,
            },
        }


@dataclass
class Change:
    """One edit ``--fix`` made, named by the source's ids."""

    action: str  # "clipped" | "converted" | "resized" | "dropped" | "merged" | "renumbered"
    summary: str
    code: str | None = None  # the problem it answers
    image_id: Id | None = None
    annotation_id: Id | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "code": self.code,
            "image_id": self.image_id,
            "annotation_id": self.annotation_id,
            "summary": self.summary,
        }


@dataclass
class FixResult:
    out: Path
    changes: list[Change]
    images: int  # what OUT holds
    annotations: int
    clean: bool  # OUT checked again and has no problem
    remaining: list[Problem] = field(default_factory=list)  # what OUT still has (a bug if any)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "images": self.images,
            "annotations": self.annotations,
            "clean": self.clean,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass
class DataReport:
    source: Path
    format: str
    split: str | None
    problems: list[Problem]
    notes: list[str]
    stats: DataStats
    fix: FixResult | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        document = {
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
            "stats": self.stats.to_dict(),
        }
        if self.fix is not None:
            document["fix"] = self.fix.to_dict()
        return document
