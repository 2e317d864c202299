"""Train a ResNet-18 head on a 10-class folder; one class folder too many made it into the labels."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

model = resnet18(weights=None)
model.fc = nn.Linear(model.fc.in_features, 10)
labels = torch.tensor([0, 3, 9, 10, 2, 5, 7, 1])
loader = DataLoader(TensorDataset(torch.rand(8, 3, 32, 32), labels), batch_size=4, shuffle=False)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

for _epoch in range(1):
    for images, targets in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), targets)
        loss.backward()
        optimizer.step()
