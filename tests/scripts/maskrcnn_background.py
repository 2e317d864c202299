"""Mask R-CNN for 3 classes (cat, dog, bird), labelled 1..3 but the predictors are sized for 3 outputs."""

import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256)
model.roi_heads.box_predictor = FastRCNNPredictor(1024, 3)
model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, 3)

images = [torch.rand(3, 256, 256)]
masks = torch.zeros(3, 256, 256, dtype=torch.uint8)
masks[:, 40:120, 40:120] = 1
targets = [
    {
        "boxes": torch.tensor(
            [[40.0, 40.0, 120.0, 120.0], [10.0, 10.0, 60.0, 90.0], [100.0, 80.0, 200.0, 220.0]]
        ),
        "labels": torch.tensor([1, 2, 3]),
        "masks": masks,
    }
]
model.train()
losses = model(images, targets)
