"""A user's own detector: torchvision's FCOS around a small backbone of their own (one feature map),
the way torchvision's docs build a detector on a custom backbone. `headfit train` takes it as
`tests/data/own_fcos.py:build`."""

from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator


def conv(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv(3, 16), conv(16, 32), conv(32, 64), conv(64, 64))
        self.out_channels = 64  # what torchvision's detection heads read

    def forward(self, x):
        return self.features(x)  # stride 16


def build(num_classes=2):
    anchors = AnchorGenerator(sizes=((32,),), aspect_ratios=((1.0,),))
    return FCOS(Backbone(), num_classes, min_size=128, max_size=128, anchor_generator=anchors)
