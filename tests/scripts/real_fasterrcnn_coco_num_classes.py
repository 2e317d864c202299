"""Faster R-CNN built for 6 classes, given the COCO checkpoint the builder would have downloaded.

From https://github.com/pytorch/vision/issues/4263 (`fasterrcnn_resnet50_fpn(pretrained=True, num_classes=6)`
fails loading the 91-class `roi_heads.box_predictor` weights). The COCO checkpoint is a freshly built
91-class model's state_dict.
"""

import os
import tempfile

import torch
import torchvision

coco_path = os.path.join(tempfile.mkdtemp(), "fasterrcnn_resnet50_fpn_coco.pth")
torch.save(
    torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(),
    coco_path,
)

model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, num_classes=6
)
state_dict = torch.load(coco_path)
model.load_state_dict(state_dict)
