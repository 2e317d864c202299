"""U-Net whose `up` block runs the double conv on the upsampled tensor before the skip is concatenated.

From https://devgem.io/posts/how-to-fix-channel-mismatch-errors-in-u-net-architecture-in-pytorch
(`weight of size [512, 1024, 3, 3], expected input[1, 512, 64, 64] to have 1024 channels`), scaled down.
"""

import torch
import torch.nn as nn


class UNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=1):
        super().__init__()
        self.encoder1 = self.double_conv(in_channels, 16)
        self.encoder2 = self.double_conv(16, 32)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = self.double_conv(32, 64)
        self.decoder2 = self.up(64, 32)
        self.decoder1 = self.up(32, 16)
        self.final = nn.Conv2d(16, out_channels, kernel_size=1)

    def double_conv(self, in_channels, out_channels):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )

    def up(self, in_channels, out_channels):
        return nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2),
            self.double_conv(in_channels, out_channels),
        )

    def forward(self, x):
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool(enc1))
        bottleneck = self.bottleneck(self.pool(enc2))
        dec2 = self.decoder2(bottleneck)
        dec2 = torch.cat((dec2, enc2), dim=1)
        dec1 = self.decoder1(dec2)
        dec1 = torch.cat((dec1, enc1), dim=1)
        return self.final(dec1)


model = UNet()
x = torch.randn(1, 3, 64, 64)
y = model(x)
