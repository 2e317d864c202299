"""One classic head mistake per builder, for `headfit check tests/check_mistakes.py:NAME` (test_check_cli)."""

from __future__ import annotations

import timm
import torchvision
from torch import nn
from torchvision.models import detection, segmentation


def fcos_num_classes_left_at_91():
    """The seed: the conv re-made for 2 classes, `num_classes` left at 91."""
    model = detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, 1, 1)
    return model


def retinanet_num_classes_left_at_91():
    model = detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None)
    model.head.classification_head.cls_logits = nn.Conv2d(256, 9 * 3, 3, 1, 1)
    return model


def fasterrcnn_cls_score_only():
    model = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    model.roi_heads.box_predictor.cls_score = nn.Linear(1024, 4)
    return model


def maskrcnn_box_predictor_only():
    """Runs silently: the mask predictor still predicts 91 classes for a 4-class box predictor."""
    model = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    model.roi_heads.box_predictor = detection.faster_rcnn.FastRCNNPredictor(1024, 4)
    return model


def ssd_num_columns_left_at_91():
    model = detection.ssd300_vgg16(weights=None, weights_backbone=None)
    head = model.head.classification_head
    head.module_list[0] = nn.Conv2d(512, 4 * 3, 3, padding=1)
    return model


def resnet50_linear_512():
    model = torchvision.models.resnet50(weights=None)
    model.fc = nn.Linear(512, 10)
    return model


def googlenet_main_head_only():
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    model.fc = nn.Linear(1024, 10)
    return model


def deeplab_classifier_only():
    model = segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    model.classifier[4] = nn.Conv2d(256, 3, 1)
    return model


def timm_resnet_fc_only():
    model = timm.create_model("resnet18", pretrained=False)
    model.fc = nn.Linear(512, 10)
    return model


def sequential_width_gap():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 128), nn.ReLU(), nn.Linear(64, 10))
