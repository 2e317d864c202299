"""Classify grayscale X-ray crops with an ImageNet ResNet-18."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

model = resnet18(weights=None)
model.fc = nn.Linear(model.fc.in_features, 2)
data = TensorDataset(torch.rand(8, 1, 64, 64), torch.randint(0, 2, (8,)))
loader = DataLoader(data, batch_size=4)

for xray, _label in loader:
    scores = model(xray)
