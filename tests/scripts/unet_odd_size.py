"""A small hand-written U-Net fed 100x100 tiles."""

import torch
from torch import nn


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.enc1, self.enc2, self.enc3 = block(3, 8), block(8, 16), block(16, 32)
        self.bottom = block(32, 32)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2)
        self.dec3, self.dec2, self.dec1 = block(64, 16), block(32, 8), block(16, 8)
        self.out = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        skip1 = self.enc1(x)
        skip2 = self.enc2(self.pool(skip1))
        skip3 = self.enc3(self.pool(skip2))
        bottom = self.bottom(self.pool(skip3))
        up3 = self.up(bottom)
        d3 = self.dec3(torch.cat([up3, skip3], dim=1))
        d2 = self.dec2(torch.cat([self.up(d3), skip2], dim=1))
        d1 = self.dec1(torch.cat([self.up(d2), skip1], dim=1))
        return self.out(d1)


net = UNet()
tile = torch.rand(1, 3, 100, 100)
mask_logits = net(tile)
