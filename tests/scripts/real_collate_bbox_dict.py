"""A dataset of dicts with a different number of boxes per image, batched with the default collate.

From https://e-com-net.com/article/1647657985134071808.htm
(`stack expects each tensor to be equal size, but got [2, 4] at entry 0 and [5, 4] at entry 1`).
"""

import torch
from torch.utils.data import DataLoader, Dataset


class BoxDataset(Dataset):
    def __init__(self):
        self.counts = [2, 5, 3, 1]

    def __len__(self):
        return len(self.counts)

    def __getitem__(self, index):
        n = self.counts[index]
        return {
            "image": torch.rand(3, 64, 64),
            "bbox": torch.rand(n, 4) * 32 + torch.tensor([0.0, 0.0, 32.0, 32.0]),
            "label": torch.randint(0, 5, (n,)),
            "filename": f"{index:06d}.jpg",
        }


dataset = BoxDataset()
data_loader = DataLoader(dataset, batch_size=2, shuffle=False)
for data_batch in data_loader:
    images, boxes = data_batch["image"], data_batch["bbox"]
