"""Run a torchvision Faster R-CNN on one frame read as [H, W, 3], passed as a tensor instead of a list.

The detector iterates over the tensor, and reports `images is expected to be a list of 3d tensors of
shape [C, H, W], got torch.Size([320, 3])`.
"""

import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

detector = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=3)
detector.eval()
frame = torch.rand(240, 320, 3)  # cv2.imread(path)[..., ::-1] / 255
with torch.no_grad():
    detections = detector(frame)
