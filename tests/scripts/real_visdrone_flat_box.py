"""Fine-tuning Faster R-CNN on VisDrone, where one annotation has zero height after conversion.

From https://github.com/pytorch/vision/issues/8376
(`All bounding boxes should have positive height and width. Found invalid box [290.48, 220.80, 295.81, 220.80]`).
"""

import torch
import torchvision
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, min_size=256, max_size=256
)
in_features = model.roi_heads.box_predictor.cls_score.in_features
model.roi_heads.box_predictor = FastRCNNPredictor(in_features, 12)

# VisDrone rows: left, top, width, height -> x1, y1, x2, y2
rows = [[100.0, 60.0, 40.0, 30.0], [290.4849853515625, 220.80001831054688, 5.33, 0.0]]
boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows])
images = [torch.rand(3, 480, 640)]
targets = [{"boxes": boxes, "labels": torch.tensor([4, 1])}]
model.train()
loss_dict = model(images, targets)
