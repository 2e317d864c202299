"""Faster R-CNN targets whose last two numbers are width and height, passed as x1, y1, x2, y2.

From https://github.com/pytorch/vision/issues/1128 (box `[53., 89., 7., 226.]`: x0, y0, w, h).
"""

import torch
import torchvision

model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, num_classes=2, min_size=256, max_size=256
)
model.train()
image = torch.rand(3, 320, 320)
target = {"boxes": torch.tensor([[53.0, 89.0, 7.0, 226.0]]), "labels": torch.tensor([1])}
loss_dict = model([image], [target])
