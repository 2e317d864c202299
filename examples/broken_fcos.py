"""The classic FCOS mistake: ``cls_logits`` re-sized for 2 classes, ``num_classes`` left at 91.

    headfit check examples/broken_fcos.py:broken_fcos --input '[3x1333x762]x2'
    headfit adapt torchvision:fcos_resnet50_fpn --num-classes 2 -o fcos_2.safetensors   # the right way

The forward then fails in the head's view with the error headfit explains:
``shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512``.
"""

from __future__ import annotations

import torchvision
from torch import nn


def broken_fcos() -> nn.Module:
    model = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    head = model.head.classification_head
    head.cls_logits = nn.Conv2d(256, head.num_anchors * 2, kernel_size=3, stride=1, padding=1)
    return model  # head.num_classes is still 91: the mistake
