"""SSD300 for 4 classes (3 + background): the per-level convs replaced, num_columns forgotten."""

import torch
from torch import nn
from torchvision.models.detection import ssd300_vgg16

model = ssd300_vgg16(weights=None, weights_backbone=None)
num_classes = 4
for i, conv in enumerate(model.head.classification_head.module_list):
    anchors = conv.out_channels // 91
    model.head.classification_head.module_list[i] = nn.Conv2d(
        conv.in_channels, anchors * num_classes, 3, padding=1
    )

model.eval()
with torch.no_grad():
    out = model([torch.rand(3, 300, 300)])
