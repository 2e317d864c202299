"""Torch-free facts about the torchvision detection heads: the one table both sides of headfit read.

The family modules (``torchvision_detection.py``, ``torchvision_rcnn.py``, ``torchvision_ssd.py``) build
their lint and adapt on these paths; ``explain/`` (which must never import torch) maps tracebacks to
modules and reads class counts out of messages with the same numbers. Which detectors count the
background is one line of data here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HeadFacts:
    """Where one torchvision detector family keeps its class head, and how it counts classes."""

    family: str  # the family's registry name
    head: str  # the classification head's module path in the top-level model
    logits: str  # the class-dependent layer inside ``head`` (SSD: one conv per level in ``module_list``)
    num_attr: str | None  # the attribute of ``head`` the forward's reshape reads the class count from
    regression: str  # the box regression layer's (or head's) module path
    background: bool  # whether class 0 is the background (softmax over K + 1 columns)
    anchors: dict[str, int] = field(default_factory=dict)  # boxes per location, per architecture
    sources: tuple[str, ...] = ()  # torchvision ``models/detection/`` files a traceback frame maps to

    @property
    def logits_path(self) -> str:
        return f"{self.head}.{self.logits}"


@dataclass(frozen=True)
class RCNNFacts(HeadFacts):
    """R-CNN keeps more class-dependent predictors next to the box predictor."""

    box_head: str = "roi_heads.box_head"
    mask_head: str = "roi_heads.mask_predictor"
    keypoint_head: str = "roi_heads.keypoint_predictor"
    rpn_head: str = "rpn.head"


DENSE = HeadFacts(
    family="torchvision-retinanet-fcos",
    head="head.classification_head",
    logits="cls_logits",
    num_attr="num_classes",
    regression="head.regression_head",
    background=False,  # sigmoid focal loss: K classes are K columns
    anchors={"RetinaNet": 9, "FCOS": 1},  # 3 sizes x 3 aspect ratios; FCOS is anchor-free (one point)
    sources=("retinanet.py", "fcos.py"),
)

RCNN = RCNNFacts(
    family="torchvision-rcnn",
    head="roi_heads.box_predictor",
    logits="cls_score",
    num_attr=None,  # the count lives only in the Linear's out_features
    regression="roi_heads.box_predictor.bbox_pred",
    background=True,
    anchors={"RPN": 3},  # one size x 3 aspect ratios per FPN level
    sources=("faster_rcnn.py", "mask_rcnn.py", "keypoint_rcnn.py", "roi_heads.py", "rpn.py"),
)

SSD = HeadFacts(
    family="torchvision-ssd",
    head="head.classification_head",
    logits="module_list",
    num_attr="num_columns",
    regression="head.regression_head",
    background=True,
    anchors={"SSDlite": 6},  # SSD300's count depends on the level: SSD300_ANCHORS
    sources=("ssd.py", "ssdlite.py"),
)

# SSD300 (VGG16): feature-map side -> default boxes per location (DefaultBoxGenerator's aspect ratios)
SSD300_ANCHORS = {38: 4, 19: 6, 10: 6, 5: 6, 3: 4, 1: 4}

FPN_CHANNELS = 256  # the in_channels of RetinaNet/FCOS head convs: torchvision's FPN width
COCO_CLASSES = 91  # torchvision's COCO detection heads: 90 category ids + the background

# class counts of the torchvision weights, and what each one is
PRETRAINED_CLASS_COUNTS = {
    91: "COCO detection weights (80 classes + background + 10 unused ids)",
    1000: "ImageNet-1k classification weights",
    21: "COCO-with-VOC-labels segmentation weights (20 classes + background)",
    2: "COCO person keypoint weights (person + background)",
}
PRETRAINED_KEYPOINTS = 17  # COCO person keypoints

DETECTION_HEADS = (DENSE, RCNN, SSD)
