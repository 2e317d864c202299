"""RetinaNet built for 2 classes, then given the COCO (91-class) weights with load_state_dict.

From https://github.com/pytorch/vision/issues/3442
(`size mismatch for head.classification_head.cls_logits.weight: ... [819, 256, 3, 3] ... [18, 256, 3, 3]`).
The COCO checkpoint is a freshly built 91-class model's state_dict.
"""

import os
import tempfile

import torch
import torchvision

coco = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None)
path = os.path.join(tempfile.mkdtemp(), "retinanet_resnet50_fpn_coco.pth")
torch.save(coco.state_dict(), path)
del coco

backbone = torchvision.models.detection.retinanet_resnet50_fpn(
    weights=None, weights_backbone=None, num_classes=2
)
backbone.load_state_dict(torch.load(path))
