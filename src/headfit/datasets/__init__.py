"""Detection datasets read natively (COCO, YOLO, VOC, CSV) into one in-memory form (``records.py``).

Nothing imported here imports torch; ``decode_image`` imports it when it decodes.
"""

from headfit.datasets.fingerprint import fingerprint
from headfit.datasets.images import decode_image
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.datasets.sources import read, splits
from headfit.datasets.split import split_by_id
from headfit.datasets.synth import synth

__all__ = [
    "ClassMap",
    "DetectionDataset",
    "ImageRecord",
    "decode_image",
    "fingerprint",
    "read",
    "split_by_id",
    "splits",
    "synth",
]
