"""Faster R-CNN on a dataset with background-only images: the empty boxes are built as torch.tensor([])."""

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

model = fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, num_classes=3, min_size=256, max_size=256
)
targets = [{"boxes": torch.tensor([]), "labels": torch.tensor([], dtype=torch.int64)}]
model.train()
losses = model([torch.rand(3, 256, 256)], targets)
