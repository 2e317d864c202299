"""RetinaNet for 3 classes: `num_classes` is set, but the conv forgot the 9 anchors per location."""

import torch
from torch import nn
from torchvision.models.detection import retinanet_resnet50_fpn

model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256)
model.head.classification_head.cls_logits = nn.Conv2d(256, 3, kernel_size=3, padding=1)
model.head.classification_head.num_classes = 3

model.eval()
with torch.no_grad():
    predictions = model([torch.rand(3, 256, 256)])
