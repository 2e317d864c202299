"""Predict one image with a trained classifier: the transform gives [3, H, W] and the model gets it
without a batch dimension (convs accept it since torch 1.11, the first BatchNorm does not)."""

import torch
from torch import nn
from torchvision.models import resnet18

model = resnet18(weights=None)
model.fc = nn.Linear(model.fc.in_features, 4)
model.eval()
img_tensor = torch.rand(3, 112, 112)  # transforms.ToTensor()(Image.open(path))
with torch.no_grad():
    prediction = model(img_tensor).argmax(1)
