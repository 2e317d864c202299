"""Detection datasets read natively (COCO, YOLO, VOC, CSV) into one in-memory form (``records.py``).

Nothing imported here imports torch; ``decode_image`` imports it when it decodes.
"""

from headfit.datasets.fingerprint import fingerprint
from headfit.datasets.fix import fix
from headfit.datasets.images import decode_image
from headfit.datasets.lint import lint
from headfit.datasets.problems import Problem
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.datasets.report import DataReport
from headfit.datasets.sources import read, splits
from headfit.datasets.split import split_by_id
from headfit.datasets.synth import synth
from headfit.datasets.tile import tile

__all__ = [
    "ClassMap",
    "DataReport",
    "DetectionDataset",
    "ImageRecord",
    "Problem",
    "decode_image",
    "fingerprint",
    "fix",
    "lint",
    "read",
    "split_by_id",
    "splits",
    "synth",
    "tile",
]
