"""A text classifier whose embedding is smaller than the tokenizer's vocabulary."""

import torch
from torch import nn


class TextClassifier(nn.Module):
    def __init__(self, vocab_size=100, dim=32, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens):
        hidden, _ = self.lstm(self.embed(tokens))
        return self.head(hidden[:, -1])


model = TextClassifier()
token_ids = torch.tensor([[5, 17, 99, 120, 3], [8, 2, 64, 1, 0]])
logits = model(token_ids)
