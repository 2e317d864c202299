"""Fine-tune Faster R-CNN for two classes (cat, dog) with `num_classes=2`: the labels are 1 and 2, and
torchvision counts the background in `num_classes`, so label 2 has no column (`Target 2 is out of bounds`)."""

import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

CLASSES = ["cat", "dog"]
model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=len(CLASSES))
model.transform.min_size, model.transform.max_size = (128,), 128
images = [torch.rand(3, 128, 128)]
targets = [{"boxes": torch.tensor([[10.0, 20.0, 40.0, 60.0], [50.0, 50.0, 90.0, 100.0]]), "labels": torch.tensor([1, 2])}]
loss_dict = model(images, targets)
