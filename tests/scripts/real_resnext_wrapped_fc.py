"""ResNeXt wrapped in the user's own module, with the head sized for ResNet-18 (512) instead of 2048.

From https://e-com-net.com/article/1689075049153245184.htm
(`mat1 and mat2 shapes cannot be multiplied (30x2048 and 512x2)`).
"""

import torch
from torch import nn
from torchvision import models

cls_num = 4


class XunFeiNet(nn.Module):
    def __init__(self):
        super().__init__()
        model = models.resnext50_32x4d(weights=None)
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.fc = nn.Linear(512, 2)
        self.Resnext = model

    def forward(self, img):
        out = self.Resnext(img)
        return out


model = XunFeiNet()
img = torch.rand(2, 3, 64, 64)
out = model(img)
