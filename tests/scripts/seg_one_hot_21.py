"""A 5-class dataset with one-hot masks, on an FCN built for VOC's 21 classes."""

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.segmentation import fcn_resnet50

model = fcn_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
criterion = nn.CrossEntropyLoss()
images = torch.rand(2, 3, 64, 64)
masks = F.one_hot(torch.randint(0, 5, (2, 64, 64)), 5).permute(0, 3, 1, 2).float()
loss = criterion(model(images)["out"], masks)
