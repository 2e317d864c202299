"""A detection dataset of images of different sizes, batched with the DataLoader's default collate."""

import torch
from torch.utils.data import DataLoader, Dataset


class Shapes(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        image = torch.rand(3, 120 + 8 * i, 160)
        boxes = torch.tensor([[10.0, 12.0, 60.0, 80.0]] * (1 + i % 3))
        return image, {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}


train_loader = DataLoader(Shapes(), batch_size=2, shuffle=True)
for images, targets in train_loader:
    print(len(images), len(targets))
