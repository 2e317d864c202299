"""Keypoint R-CNN on one person per image: the dataset returns that person's keypoints as [K, 3], without
the instance dimension ([N, K, 3])."""

import torch
from torchvision.models.detection import keypointrcnn_resnet50_fpn

model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, num_keypoints=5)
model.transform.min_size, model.transform.max_size = (128,), 128
keypoints = torch.tensor([[20.0, 30.0, 1], [40.0, 30.0, 1], [30.0, 50.0, 1], [25.0, 70.0, 1], [35.0, 70.0, 1]])
targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0]]), "labels": torch.tensor([1]), "keypoints": keypoints}]
loss_dict = model([torch.rand(3, 128, 128)], targets)
