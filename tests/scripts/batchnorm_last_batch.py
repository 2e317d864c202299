"""An MLP with BatchNorm on 33 samples in batches of 16: the last batch has one sample."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 3))
loader = DataLoader(TensorDataset(torch.rand(33, 20), torch.randint(0, 3, (33,))), batch_size=16)
criterion = nn.CrossEntropyLoss()
model.train()
for features, y in loader:
    loss = criterion(model(features), y)
