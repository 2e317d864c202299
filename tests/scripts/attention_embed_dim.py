"""Self-attention built for 64-dim tokens, fed 96-dim tokens."""

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(64, num_heads=4, batch_first=True)

    def forward(self, x):
        out, _ = self.attn(x, x, x)
        return out


encoder = Encoder()
out = encoder(torch.rand(2, 7, 96))
