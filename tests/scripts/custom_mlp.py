"""An MLP written for 28x28 grayscale digits, fed flattened 28x28 colour images."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(28 * 28, 256), nn.ReLU(), nn.Linear(256, 10))
images = torch.rand(4, 3, 28, 28)
logits = model(images.flatten(1))
