"""Fine-tune FCOS for 2 classes: the classification conv is replaced, `num_classes` is forgotten."""

import math

import torch
from torch import nn
from torchvision.models.detection import fcos_resnet50_fpn

model = fcos_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256)
head = model.head.classification_head
head.cls_logits = nn.Conv2d(256, head.num_anchors * 2, kernel_size=3, padding=1)
nn.init.normal_(head.cls_logits.weight, std=0.01)
nn.init.constant_(head.cls_logits.bias, -math.log(99))

model.eval()
images = [torch.rand(3, 256, 256), torch.rand(3, 256, 256)]
with torch.no_grad():
    detections = model(images)
print(detections[0]["boxes"].shape)
