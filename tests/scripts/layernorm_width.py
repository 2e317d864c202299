"""A transformer block whose LayerNorm was left at the old width after the model was widened."""

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim=128):
        super().__init__()
        self.norm = nn.LayerNorm(64)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        return x + self.mlp(self.norm(x))


block = Block()
tokens = torch.rand(2, 10, 128)
y = block(tokens)
