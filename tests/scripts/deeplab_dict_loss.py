"""Train DeepLabV3 for 3 classes: the model returns a dict, passed whole to the loss."""

import torch
from torch import nn
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3, aux_loss=True)
criterion = nn.CrossEntropyLoss()
model.train()
image, mask = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
output = model(image)
loss = criterion(output, mask)
