"""Detection datasets read natively (COCO, YOLO, VOC, CSV) into one in-memory form (``records.py``)."""

from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord

__all__ = ["ClassMap", "DetectionDataset", "ImageRecord"]
