"""A U-Net encoder built for 1-channel images, fed an RGB tensor.

From https://taourl.com/read-2653243.html (`IncorrectUNet`: `Conv2d(1, 64)` fed a 3-channel input).
"""

import torch
import torch.nn as nn


class IncorrectUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder1 = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, padding=1),  # Expects 1-channel input
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        x = self.encoder1(x)
        return x


model = IncorrectUNet()
input_tensor = torch.randn(1, 3, 64, 64)  # 3-channel input
output = model(input_tensor)
