"""SqueezeNet for 10 classes, with the head swapped as if it were a Linear classifier."""

import torch
from torch import nn
from torchvision.models import squeezenet1_1

model = squeezenet1_1(weights=None)
model.classifier[1] = nn.Linear(512, 10)
logits = model(torch.rand(2, 3, 64, 64))
