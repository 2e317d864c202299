"""Labels read from a CSV column arrive as [N, 1] into CrossEntropyLoss."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
features = torch.rand(6, 12)
labels = torch.tensor([[0], [3], [1], [2], [2], [1]])
loss = nn.CrossEntropyLoss()(model(features), labels)
