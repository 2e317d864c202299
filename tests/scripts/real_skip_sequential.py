"""A block whose skip connection concatenates channels, followed by a conv still sized for the input alone.

From https://github.com/matthewfranglen/interactive-image-classification (the "if you forget this" error:
`weight of size [16, 16, 3, 3], expected input[128, 24, 19, 19] to have 16 channels`).
"""

import torch
import torch.nn as nn


class SkipSequential(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_prime = super().forward(x)
        return torch.cat([x, x_prime], dim=1)


def repeating_block(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        SkipSequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=(3, 3), padding=(1, 1), padding_mode="reflect"),
            nn.Tanh(),
            nn.Conv2d(out_channels, out_channels, kernel_size=(3, 3), padding=(1, 1), padding_mode="reflect"),
        ),
        nn.Tanh(),
        nn.Conv2d(
            in_channels=in_channels,  # forgot the skip: should be in_channels + out_channels
            out_channels=out_channels,
            kernel_size=(3, 3),
            stride=(2, 2),
            padding=(1, 1),
            padding_mode="reflect",
        ),
        nn.Tanh(),
    )


model = nn.Sequential(repeating_block(3, 16), repeating_block(16, 8))
batch = torch.rand(4, 3, 38, 38)
output = model(batch)
