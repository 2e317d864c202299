"""A small FCOS for CPU training: torchvision's ``FCOS`` behind a five-stage conv net and an FPN.

torchvision's smallest detectors take 11-30 s per step on a laptop CPU at batch 4 (depthwise convs
and RoIAlign backward are slow there); this one takes a fraction of a second at 160 px and learns
the synthetic shapes of ``headfit data synth`` within a hundred steps. ``headfit demo`` trains it;
``headfit train headfit.train.tiny:tiny_fcos --data DATA`` trains it on anything.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU, the first with stride 2: each stage halves the map."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def tiny_fcos(num_classes: int = 91, *, size: int = 160, width: int = 64) -> FCOS:
    """FCOS with strides 8..128 (C3-C5 of the conv net, then P6, P7), ``width`` FPN channels; 91
    classes by default, like torchvision's builders, so a COCO-style checkpoint fits its head."""
    body = nn.Sequential(
        OrderedDict(
            stem=_stage(3, 16), s2=_stage(16, 32), s3=_stage(32, 64), s4=_stage(64, 128), s5=_stage(128, 128)
        )
    )
    backbone = BackboneWithFPN(
        body,
        return_layers={"s3": "0", "s4": "1", "s5": "2"},
        in_channels_list=[64, 128, 128],
        out_channels=width,
        extra_blocks=LastLevelP6P7(width, width),
    )
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5)
    return FCOS(backbone, num_classes, min_size=size, max_size=size, anchor_generator=anchors)
