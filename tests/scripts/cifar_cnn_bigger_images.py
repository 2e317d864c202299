"""A CIFAR-10 CNN (built for 32x32: `fc` takes 64 * 8 * 8) fine-tuned on 64x64 crops; the flatten in
`forward` then gives 64 * 16 * 16 features (`mat1 and mat2 shapes cannot be multiplied (4x16384 and 4096x10)`)."""

import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(64 * 8 * 8, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)


model = SmallCNN()
crops = torch.rand(4, 3, 64, 64)
logits = model(crops)
