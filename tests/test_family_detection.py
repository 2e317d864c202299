"""The torchvision detection families: recognise, lint (one injected mistake per code), adapt, smoke."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.models import detection as D
from torchvision.models.detection.anchor_utils import AnchorGenerator

from headfit.catalogue import code_info
from headfit.diagnosis import Diagnosis
from headfit.errors import UsageError
from headfit.families import family_for

BUILDERS = {
    "fasterrcnn_resnet50_fpn": D.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": D.fasterrcnn_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": D.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": D.fasterrcnn_mobilenet_v3_large_320_fpn,
    "maskrcnn_resnet50_fpn": D.maskrcnn_resnet50_fpn,
    "maskrcnn_resnet50_fpn_v2": D.maskrcnn_resnet50_fpn_v2,
    "keypointrcnn_resnet50_fpn": D.keypointrcnn_resnet50_fpn,
    "retinanet_resnet50_fpn": D.retinanet_resnet50_fpn,
    "retinanet_resnet50_fpn_v2": D.retinanet_resnet50_fpn_v2,
    "fcos_resnet50_fpn": D.fcos_resnet50_fpn,
    "ssd300_vgg16": D.ssd300_vgg16,
    "ssdlite320_mobilenet_v3_large": D.ssdlite320_mobilenet_v3_large,
}
PRETRAINED_CLASSES = {"keypointrcnn_resnet50_fpn": 2}


def build(name: str, device: str = "meta", **kwargs) -> nn.Module:
    kwargs.setdefault("num_classes", PRETRAINED_CLASSES.get(name, 91))
    with torch.device(device):
        return BUILDERS[name](weights=None, weights_backbone=None, **kwargs)


def only(problems, code):
    found = [p for p in problems if p.code == code]
    assert found, f"no {code} in {[p.code for p in problems]}"
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_is_recognised_and_lints_clean(name):
    model = build(name)
    family = family_for(model)
    assert family.name.startswith("torchvision-")
    assert family.lint(model) == []
    expected = PRETRAINED_CLASSES.get(name, 91)
    assert family.num_classes(model) == expected - int(family.counts_background)
    assert family.heads(model)


@pytest.mark.parametrize("name", ["fcos_resnet50_fpn", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2"])
def test_seed_conv_replaced_and_num_classes_left(name):
    model = build(name)
    cls = model.head.classification_head
    cls.cls_logits = nn.Conv2d(256, 2 * cls.num_anchors, 3, padding=1, device="meta")
    problem = only(family_for(model).lint(model), "HF201")
    assert (problem.module, problem.attribute) == ("head.classification_head", "num_classes")
    assert problem.fix == "model.head.classification_head.num_classes = 2"
    assert any(f"{cls.num_anchors} * 91 = {cls.num_anchors * 91}" in f for f in problem.facts)


def test_cls_conv_not_a_multiple_of_anchors_names_the_conv():
    model = build("retinanet_resnet50_fpn")
    model.head.classification_head.cls_logits = nn.Conv2d(256, 10, 3, padding=1, device="meta")
    problem = only(family_for(model).lint(model), "HF201")
    assert (problem.module, problem.attribute) == ("head.classification_head.cls_logits", "out_channels")
    assert "torch.nn.Conv2d(256, 819," in problem.fix


@pytest.mark.parametrize(
    ("name", "layer", "channels"),
    [("retinanet_resnet50_fpn", "bbox_reg", 4), ("fcos_resnet50_fpn", "bbox_ctrness", 2)],
)
def test_regression_conv_for_another_anchor_count(name, layer, channels):
    model = build(name)
    setattr(model.head.regression_head, layer, nn.Conv2d(256, channels, 3, padding=1, device="meta"))
    problem = only(family_for(model).lint(model), "HF202")
    assert (problem.module, problem.attribute) == (f"head.regression_head.{layer}", "out_channels")


def test_stale_num_anchors_attribute():
    model = build("retinanet_resnet50_fpn")
    model.head.classification_head.num_anchors = 3
    problem = only(family_for(model).lint(model), "HF203")
    assert (problem.module, problem.attribute) == ("head.classification_head", "num_anchors")
    assert problem.fix == "model.head.classification_head.num_anchors = 9"


def test_anchor_generator_for_other_anchors_than_the_head():
    model = build("retinanet_resnet50_fpn")
    model.anchor_generator = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((1.0,),) * 5)
    problem = only(family_for(model).lint(model), "HF203")
    assert (problem.module, problem.attribute) == ("anchor_generator", "num_anchors_per_location")


def test_anchor_levels_vs_feature_maps():
    model = build("fcos_resnet50_fpn")
    model.anchor_generator = AnchorGenerator(((8,), (16,), (32,)), ((1.0,),) * 3)
    problem = only(family_for(model).lint(model), "HF204")
    assert (problem.module, problem.attribute) == ("anchor_generator", "sizes")
    assert "sizes=((8,), (16,), (32,), (64,), (128,))" in problem.fix


def test_sizes_and_aspect_ratios_of_different_lengths():
    model = build("retinanet_resnet50_fpn")
    model.anchor_generator.aspect_ratios = model.anchor_generator.aspect_ratios[:1]
    problem = only(family_for(model).lint(model), "HF205")
    assert (problem.module, problem.attribute) == ("anchor_generator", "aspect_ratios")


def test_every_code_has_an_explanation():
    for code in [f"HF2{n:02d}" for n in range(1, 6)]:
        info = code_info(code)
        assert info is not None and info.category and "## Fix" in info.text, code


def test_dense_adapt_keeps_towers_and_inits_like_torchvision():
    torch.manual_seed(0)
    model = build("retinanet_resnet50_fpn", device="cpu", num_classes=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary = family_for(model).adapt(model, 3, keep=[4, 1, 2])
    cls = model.head.classification_head
    assert (cls.num_classes, cls.cls_logits.out_channels) == (3, 27)
    assert summary.replaced == ["head.classification_head.cls_logits"]
    assert any("counts no background" in n for n in summary.notes)
    after = model.state_dict()
    for key, value in before.items():
        if not key.startswith("head.classification_head.cls_logits."):
            assert torch.equal(after[key], value), key
    old_w, new_w = before["head.classification_head.cls_logits.weight"], cls.cls_logits.weight
    for a in range(9):  # channel a*K + i starts from the source's a*5 + keep[i]
        for i, k in enumerate([4, 1, 2]):
            assert torch.equal(new_w[a * 3 + i], old_w[a * 5 + k])


def test_dense_adapt_fresh_head_has_prior_bias():
    model = build("fcos_resnet50_fpn", device="cpu", num_classes=91)
    family_for(model).adapt(model, 4)
    bias = model.head.classification_head.cls_logits.bias
    assert torch.allclose(bias, torch.full_like(bias, -math.log(99)))


def test_adapt_rejects_bad_options():
    model = build("fcos_resnet50_fpn")
    with pytest.raises(UsageError, match="`head`"):
        family_for(model).adapt(model, 3, head="x")
    with pytest.raises(UsageError):
        family_for(model).adapt(model, 2, keep=[1, 2, 3])


def test_explain_failure_names_the_culprit_with_the_users_prefix():
    model = build("fcos_resnet50_fpn")
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, padding=1, device="meta")
    with pytest.raises(RuntimeError) as raised:  # the real error, on meta: instant
        model.head.classification_head([torch.empty(2, 256, 100, 100, device="meta")])
    diagnosis = Diagnosis("HF101", "view_size_mismatch", "RuntimeError", str(raised.value), "")
    evidence = family_for(model).explain_failure(model, "head.classification_head", diagnosis, prefix="net")
    assert any("emits 2 channels; `num_classes` says 91; `num_anchors` is 1" in f for f in evidence.facts)
    top = max(evidence.causes, key=lambda c: c.confidence)
    assert (top.module, top.attribute, top.fix) == (
        "head.classification_head",
        "num_classes",
        "net.head.classification_head.num_classes = 2",
    )


# --- R-CNN ---------------------------------------------------------------------------------------------


def test_rcnn_cls_score_replaced_alone():
    model = build("fasterrcnn_resnet50_fpn")
    model.roi_heads.box_predictor.cls_score = nn.Linear(1024, 4, device="meta")
    problem = only(family_for(model).lint(model), "HF206")
    assert (problem.module, problem.attribute) == ("roi_heads.box_predictor", "bbox_pred")
    assert problem.fix == (
        "model.roi_heads.box_predictor = torchvision.models.detection.faster_rcnn.FastRCNNPredictor(1024, 4)"
    )


def test_rcnn_class_agnostic_box_head_is_only_fine_for_two_classes():
    model = build("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=2)
    assert family_for(model).lint(model) == []  # 8 = 4 * 2
    model.roi_heads.box_predictor.cls_score = nn.Linear(1024, 3, device="meta")
    assert only(family_for(model).lint(model), "HF206").attribute == "bbox_pred"


def test_half_adapted_mask_rcnn_is_flagged():
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    model = build("maskrcnn_resnet50_fpn")
    with torch.device("meta"):
        model.roi_heads.box_predictor = FastRCNNPredictor(1024, 4)
    problem = only(family_for(model).lint(model), "HF207")
    assert (problem.module, problem.attribute) == ("roi_heads.mask_predictor", "mask_fcn_logits")
    assert problem.fix.endswith("MaskRCNNPredictor(256, 256, 4)")


def test_keypoint_predictor_out_channels_stale():
    model = build("keypointrcnn_resnet50_fpn")
    model.roi_heads.keypoint_predictor.kps_score_lowres = nn.ConvTranspose2d(512, 5, 4, 2, 1, device="meta")
    problem = only(family_for(model).lint(model), "HF208")
    assert (problem.module, problem.attribute, problem.fix) == (
        "roi_heads.keypoint_predictor",
        "out_channels",
        "model.roi_heads.keypoint_predictor.out_channels = 5",
    )


def test_box_predictor_wider_than_box_head():
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    model = build("fasterrcnn_resnet50_fpn_v2")
    with torch.device("meta"):
        model.roi_heads.box_predictor = FastRCNNPredictor(2048, 4)
    problem = only(family_for(model).lint(model), "HF209")
    assert (problem.module, problem.attribute) == ("roi_heads.box_predictor.cls_score", "in_features")


def test_rpn_head_vs_custom_anchor_generator():
    model = build("fasterrcnn_resnet50_fpn_v2")
    model.rpn.anchor_generator = AnchorGenerator(
        ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0, 4.0),) * 5
    )
    problem = only(family_for(model).lint(model), "HF203")
    assert (problem.module, problem.attribute) == ("rpn.head", "cls_logits")
    assert problem.fix == "model.rpn.head = torchvision.models.detection.rpn.RPNHead(256, 4, conv_depth=2)"


def test_user_assembled_faster_rcnn_with_one_feature_map():
    import torchvision
    from torchvision.models.detection import FasterRCNN

    with torch.device("meta"):
        backbone = torchvision.models.mobilenet_v2(weights=None).features
        backbone.out_channels = 1280
        model = FasterRCNN(backbone, num_classes=2)
    problem = only(family_for(model).lint(model), "HF204")
    assert (problem.module, problem.attribute) == ("rpn.anchor_generator", "sizes")
    assert "sizes=((32,),), aspect_ratios=((0.5, 1.0, 2.0),) * 1" in problem.fix
    with torch.device("meta"):
        model = FasterRCNN(
            backbone,
            num_classes=2,
            rpn_anchor_generator=AnchorGenerator(((32, 64),), ((1.0,),)),
            box_roi_pool=torchvision.ops.MultiScaleRoIAlign(["0"], 7, 2),
        )
    assert family_for(model).lint(model) == []  # the tutorial recipe: one level, RPN head built for it


# --- SSD -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ssd300_vgg16", "ssdlite320_mobilenet_v3_large"])
def test_ssd_convs_swapped_and_num_columns_left(name):
    model = build(name)
    family = family_for(model)
    family.adapt(model, 3)
    model.head.classification_head.num_columns = 91
    problem = only(family.lint(model), "HF211")
    assert (problem.module, problem.attribute, problem.fix) == (
        "head.classification_head",
        "num_columns",
        "model.head.classification_head.num_columns = 4",
    )


def test_ssd_regression_conv_for_other_anchors():
    model = build("ssd300_vgg16")
    model.head.regression_head.module_list[0] = nn.Conv2d(512, 24, 3, padding=1, device="meta")
    problem = only(family_for(model).lint(model), "HF212")
    assert (problem.module, problem.attribute) == ("head.regression_head.module_list.0", "out_channels")


def test_ssd_levels_disagree():
    model = build("ssd300_vgg16")
    model.anchor_generator.aspect_ratios = model.anchor_generator.aspect_ratios[:5]
    problem = only(family_for(model).lint(model), "HF213")
    assert (problem.module, problem.attribute) == ("anchor_generator", "aspect_ratios")
