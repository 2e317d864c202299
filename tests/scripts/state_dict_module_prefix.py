"""Load a checkpoint saved from a DataParallel-wrapped ResNet-18 into a plain one."""

import os
import tempfile

import torch
from torchvision.models import resnet18

path = os.path.join(tempfile.mkdtemp(), "checkpoint.pth")
torch.save({"module." + k: v for k, v in resnet18(weights=None).state_dict().items()}, path)

model = resnet18(weights=None)
checkpoint = torch.load(path, weights_only=True)
model.load_state_dict(checkpoint)
