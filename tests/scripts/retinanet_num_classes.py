"""RetinaNet for 3 classes: a new classification conv, but the head still says 91 classes."""

import torch
from torch import nn
from torchvision.models.detection import retinanet_resnet50_fpn

detector = retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256)
cls_head = detector.head.classification_head
cls_head.cls_logits = nn.Conv2d(256, cls_head.num_anchors * 3, kernel_size=3, padding=1)

detector.eval()
with torch.no_grad():
    out = detector([torch.rand(3, 256, 256)])
