"""A small CNN where the second conv was widened but the first was not."""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


cnn = SmallCNN()
out = cnn(torch.rand(2, 3, 32, 32))
