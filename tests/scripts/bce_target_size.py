"""A binary classifier trained with BCEWithLogitsLoss: the output has a trailing 1, the target not."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
criterion = nn.BCEWithLogitsLoss()
x, is_positive = torch.rand(8, 16), torch.randint(0, 2, (8,)).float()
loss = criterion(model(x), is_positive)
