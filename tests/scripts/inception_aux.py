"""Train Inception v3: in train mode it returns (logits, aux_logits), passed whole to the loss."""

import torch
from torch import nn
from torchvision.models import inception_v3

model = inception_v3(weights=None, init_weights=False, num_classes=5)
criterion = nn.CrossEntropyLoss()
model.train()
images, labels = torch.rand(2, 3, 299, 299), torch.tensor([1, 4])
outputs = model(images)
loss = criterion(outputs, labels)
