"""Fine-tune a COCO FCOS on a 2-class dataset, the way most tutorials re-head it (by hand).

The classification conv is replaced for 2 classes, but the head's `num_classes` still says 91.
Run it with `headfit run examples/finetune_fcos.py` to see headfit name the culprit.
(weights=None keeps the example offline; with real COCO weights the error is the same.)
"""

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import fcos_resnet50_fpn


class TwoShapes(Dataset):
    """Random images with one box each, labelled 0 or 1."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        image = torch.rand(3, 256, 320)
        target = {"boxes": torch.tensor([[20.0, 30.0, 120.0, 160.0]]), "labels": torch.tensor([i % 2])}
        return image, target


detector = fcos_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=320)
head = detector.head.classification_head
head.cls_logits = nn.Conv2d(256, head.num_anchors * 2, kernel_size=3, padding=1)
nn.init.normal_(head.cls_logits.weight, std=0.01)
nn.init.constant_(head.cls_logits.bias, -math.log(99))

loader = DataLoader(TwoShapes(), batch_size=2, collate_fn=lambda batch: tuple(zip(*batch)))
optimizer = torch.optim.SGD(detector.parameters(), lr=0.01, momentum=0.9)
detector.train()
for images, targets in loader:
    losses = detector(list(images), list(targets))
    loss = sum(losses.values())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"loss {loss.item():.3f}")
