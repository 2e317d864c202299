"""Faster R-CNN for 2 classes: only the box regressor was resized, the classifier still has 91 rows."""

import torch
from torch import nn
from torchvision.models.detection import fasterrcnn_resnet50_fpn

model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256)
model.roi_heads.box_predictor.bbox_pred = nn.Linear(1024, 3 * 4)

model.eval()
with torch.no_grad():
    detections = model([torch.rand(3, 256, 256)])
