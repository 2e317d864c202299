"""Binary segmentation with FCN: the masks are PNGs saved as 0/255 and read with `torch.as_tensor`, so the
object pixels are 255, not class 1 (`Target 255 is out of bounds`)."""

import torch
from torch import nn
from torchvision.models.segmentation import fcn_resnet50

model = fcn_resnet50(weights=None, weights_backbone=None, num_classes=2, aux_loss=False)
criterion = nn.CrossEntropyLoss()
images = torch.rand(2, 3, 64, 64)
masks = (torch.rand(2, 64, 64) > 0.5).long() * 255  # torch.as_tensor(np.array(Image.open(path)))
loss = criterion(model(images)["out"], masks)
