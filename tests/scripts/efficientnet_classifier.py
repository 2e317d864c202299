"""EfficientNet-B0 for 10 classes, with in_features copied from a ResNet-50 example."""

import torch
from torch import nn
from torchvision.models import efficientnet_b0

model = efficientnet_b0(weights=None)
model.classifier[1] = nn.Linear(2048, 10)
logits = model(torch.rand(2, 3, 64, 64))
