"""Fine-tune Faster R-CNN with COCO-style annotations (x, y, width, height) passed straight through."""

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

model = fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, num_classes=3, min_size=256, max_size=256
)
annotations = [
    {"bbox": [50.0, 60.0, 30.0, 40.0], "category_id": 1},
    {"bbox": [10.0, 20.0, 100.0, 80.0], "category_id": 2},
]
targets = [
    {
        "boxes": torch.tensor([a["bbox"] for a in annotations]),
        "labels": torch.tensor([a["category_id"] for a in annotations]),
    }
]
model.train()
loss_dict = model([torch.rand(3, 256, 256)], targets)
