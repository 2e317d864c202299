"""Segmentation with colour-coded label PNGs (one colour per class) loaded as [N, 3, H, W] RGB masks."""

import torch
from torch import nn
from torchvision.models.segmentation import fcn_resnet50

model = fcn_resnet50(weights=None, weights_backbone=None, num_classes=4, aux_loss=False)
criterion = nn.CrossEntropyLoss()
images = torch.rand(2, 3, 64, 64)
masks = torch.randint(0, 255, (2, 3, 64, 64))  # the RGB label image, not class indices
loss = criterion(model(images)["out"], masks)
