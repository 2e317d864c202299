"""HF101-HF107 on messages and tracebacks produced by running the faulty torch code."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explain_support import raised
from headfit.explain import explain


def _numbers_in(facts: list[str]) -> str:
    return "\n".join(facts)


# --- HF101: detection heads ------------------------------------------------------------------------------


def _fcos_seed():
    from torchvision.models.detection import fcos_resnet50_fpn

    with torch.device("meta"):
        model = fcos_resnet50_fpn(weights=None, weights_backbone=None)
        model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, padding=1)
        return raised(lambda: model.eval()([torch.empty(3, 1333, 762, device="meta")] * 2))


def _retinanet(classes: int):
    from torchvision.models.detection import retinanet_resnet50_fpn

    with torch.device("meta"):
        model = retinanet_resnet50_fpn(weights=None, weights_backbone=None)
        model.head.classification_head.cls_logits = nn.Conv2d(256, 9 * classes, 3, padding=1)
        return raised(lambda: model.eval()([torch.empty(3, 320, 320, device="meta")]))


def _ssd(columns: int):
    from torchvision.models.detection import ssd300_vgg16

    with torch.device("meta"):
        model = ssd300_vgg16(weights=None, weights_backbone=None)
        model.head.classification_head.module_list[0] = nn.Conv2d(512, 4 * columns, 3, padding=1)
        return raised(lambda: model.eval()([torch.empty(3, 300, 300, device="meta")]))


def test_seed_fcos_traceback_gets_the_issue_diagnosis():
    r = _fcos_seed()
    assert r.message == "shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512"
    for text in (r.text, r.message, r.typed):
        d = explain(text)
        assert (d.code, d.category) == ("HF101", "view_size_mismatch")
        facts = _numbers_in(d.facts)
        assert "2*91*168*96 = 2,935,296" in facts
        assert "does not divide 64,512" in facts
        assert "64,512 / (2*168*96) = 2 channels per location" in facts
        top = d.causes[0]
        assert (top.module, top.attribute) == ("head.classification_head", "num_classes")
        assert top.fix == "model.head.classification_head.num_classes = 2"
        assert d.causes[1].module == "head.classification_head.cls_logits"
        assert "nn.Conv2d(256, 1 * 91, 3, padding=1)" in d.causes[1].fix
    located = explain(r.text)
    assert located.location.module == "head.classification_head"
    assert located.location.module_type == "FCOSClassificationHead"
    assert located.location.line is not None and "cls_logits.view" in located.location.source
    assert located.user_location.file.endswith("test_explain_rules_core.py")


def test_seed_bare_message_names_both_fcos_and_retinanet():
    d = explain(_fcos_seed().message)
    facts = _numbers_in(d.facts)
    assert "FCOS (A = 1): 2 channels = 2 classes" in facts
    assert "RetinaNet (A = 9): 2 is not a multiple of 9" in facts


def test_seed_from_live_exception_object():
    d = explain(_fcos_seed().exception)
    assert d.location.module == "head.classification_head"
    assert d.causes[0].fix == "model.head.classification_head.num_classes = 2"


@pytest.mark.parametrize("classes", [3, 20])
def test_retinanet_nine_anchors(classes):
    r = _retinanet(classes)
    d = explain(r.text)
    assert d.location.module_type == "RetinaNetClassificationHead"
    assert d.causes[0].fix == f"model.head.classification_head.num_classes = {classes}"
    assert f"= {9 * classes} channels per location" in _numbers_in(d.facts)
    assert f"RetinaNet (A = 9): {9 * classes} = 9*{classes} -> {classes} classes" in d.facts


def test_retinanet_bare_message_ranks_nine_anchors_first():
    d = explain(_retinanet(3).message)
    assert d.causes[0].fix == "model.head.classification_head.num_classes = 3"
    assert d.causes[1].fix == "model.head.classification_head.num_classes = 27"


def test_ssd_uses_num_columns():
    r = _ssd(3)
    d = explain(r.text)
    assert d.location.module == "head.classification_head"
    assert (d.causes[0].attribute, d.causes[0].fix) == (
        "num_columns",
        "model.head.classification_head.num_columns = 3",
    )
    assert "SSD (A = 4): 12 = 4*3 -> 3 classes" in d.facts


def test_regression_view_points_at_the_box_head():
    from torchvision.models.detection import retinanet_resnet50_fpn

    with torch.device("meta"):
        model = retinanet_resnet50_fpn(weights=None, weights_backbone=None)
        model.head.regression_head.bbox_reg = nn.Conv2d(256, 9 * 4 + 2, 3, padding=1)
        r = raised(lambda: model.eval()([torch.empty(3, 320, 320, device="meta")]))
    d = explain(r.text)
    assert d.location.module == "head.regression_head"
    assert d.causes[0].module == "head.regression_head.bbox_reg"
    assert "38 channels per location" in _numbers_in(d.facts)


def test_yolo_detect_view_gives_nc_from_the_size():
    bs, na, nc_model, nc_conv, ny, nx = 2, 3, 80, 4, 20, 20
    x = torch.zeros(bs, na * (nc_conv + 5), ny, nx)
    r = raised(lambda: x.view(bs, na, nc_model + 5, ny, nx))
    d = explain(r.message)
    assert d.code == "HF101"
    assert d.causes[0].attribute == "nc"
    assert f"nc = {nc_conv + 5} - 5 = {nc_conv} classes" in _numbers_in(d.facts)


# --- HF101: general ----------------------------------------------------------------------------------------


def test_general_view_names_the_dim_and_its_needed_value():
    r = raised(lambda: torch.zeros(2, 3, 4).view(2, 5, 4))
    d = explain(r.text)
    assert d.code == "HF101"
    assert "the shape needs 2*5*4 = 40 elements, the tensor has 24" in d.facts
    assert d.causes[0].summary == "dimension 1 should be 3, not 5"
    assert d.causes[0].fix == ".view(2, 3, 4)"


def test_general_view_with_minus_one_says_what_it_would_need():
    r = raised(lambda: torch.zeros(7).reshape(3, -1, 5))
    d = explain(r.message)
    assert "-1 would have to be 7 / 15 = 0.4667" in d.facts


def test_unflatten_variant():
    r = raised(lambda: torch.zeros(2, 12).unflatten(1, (5, -1)))
    d = explain(r.text)
    assert d.code == "HF101"
    assert "5 does not divide 12: 12 = 2*5 + 2" in d.facts


def test_non_contiguous_view():
    r = raised(lambda: torch.zeros(4, 6).t().view(24))
    d = explain(r.text)
    assert (d.code, d.category) == ("HF102", "view_non_contiguous")
    assert any(".reshape(" in c.fix for c in d.causes)
    assert any(".contiguous().view(" in c.fix for c in d.causes)


# --- HF103 -------------------------------------------------------------------------------------------------


def test_linear_names_backbones_for_both_widths():
    from torchvision.models import resnet50

    with torch.device("meta"):
        model = resnet50(weights=None)
        model.fc = nn.Linear(512, 10)
        r = raised(lambda: model(torch.empty(2, 3, 64, 64)))
    d = explain(r.text)
    assert (d.code, d.category) == ("HF103", "linear_shape_mismatch")
    facts = "\n".join(d.facts)
    assert "in_features = 512, out_features = 10" in facts
    assert "2,048 = the feature width of resnet50, resnet101, resnet152" in facts
    assert "512 = the feature width of resnet18, resnet34" in facts
    assert d.causes[0].fix.startswith("nn.Linear(2048, 10)")


def test_linear_after_unpooled_feature_map():
    head = nn.Sequential(nn.Flatten(), nn.Linear(512, 10))
    r = raised(lambda: head(torch.zeros(2, 512, 7, 7)))
    d = explain(r.message)
    assert "25,088 = 512*7*7" in d.facts
    assert "AdaptiveAvgPool2d(1)" in d.causes[0].fix


def test_linear_input_size_differs_from_the_build_size():
    from torchvision.models import vgg16

    with torch.device("meta"):
        model = vgg16(weights=None)
        model.avgpool = nn.Identity()
        r = raised(lambda: model(torch.empty(1, 3, 448, 448)))
    d = explain(r.text)
    assert any("512*14*14 and 25,088 = 512*7*7" in f for f in d.facts)
    assert d.causes[0].summary.startswith("the input image is 2 times larger per side")


# --- HF104 / HF105 -----------------------------------------------------------------------------------------


def test_grayscale_into_rgb_stem():
    from torchvision.models import resnet18

    model = resnet18(weights=None)  # on CPU: the meta conv kernel says only "Invalid channel dimensions"
    r = raised(lambda: model(torch.zeros(2, 1, 32, 32)))
    d = explain(r.text)
    assert (d.code, d.category) == ("HF104", "conv_channel_mismatch")
    assert d.location.module_type == "Conv2d"
    assert "expand(-1, 3, -1, -1)" in d.causes[0].fix
    assert any("in_chans=1" in c.fix for c in d.causes)


def test_channels_last_image():
    r = raised(lambda: nn.Conv2d(3, 8, 3)(torch.zeros(2, 64, 64, 3)))
    d = explain(r.message)
    assert "permute(0, 3, 1, 2)" in d.causes[0].fix


def test_rgba_image():
    r = raised(lambda: nn.Conv2d(3, 8, 3)(torch.zeros(2, 4, 64, 64)))
    assert 'convert("RGB")' in explain(r.message).causes[0].fix


@pytest.mark.parametrize(
    "make, fix",
    [
        (lambda: nn.Conv2d(3, 8, 3)(torch.zeros(64, 64)), "x[None, None]"),
        (lambda: nn.BatchNorm2d(3)(torch.zeros(3, 8, 8)), "unsqueeze(0)"),
        (lambda: nn.Conv2d(3, 8, 3)(torch.zeros(1, 2, 3, 8, 8)), "squeeze(0)"),
        (lambda: nn.BatchNorm1d(3)(torch.zeros(2, 3, 8, 8)), "nn.BatchNorm2d"),
    ],
)
def test_input_rank(make, fix):
    d = explain(raised(make).text)
    assert (d.code, d.category) == ("HF105", "input_rank_mismatch")
    assert fix in d.causes[0].fix


# --- HF106 / HF107 -----------------------------------------------------------------------------------------


def test_state_dict_head_for_other_class_count():
    from torchvision.models import resnet18

    with torch.device("meta"):
        pretrained = resnet18(weights=None).state_dict()
        model = resnet18(weights=None, num_classes=10)
    d = explain(raised(lambda: model.load_state_dict(pretrained)).text)
    assert (d.code, d.category) == ("HF106", "state_dict_size_mismatch")
    assert "`fc.weight`: checkpoint [1000, 512], model [10, 512]" in d.facts
    assert d.summary == "the checkpoint's head is for 1000 classes, the model's for 10"
    assert 'k.startswith(("fc.",))' in d.causes[0].fix and "strict=False" in d.causes[0].fix
    assert d.causes[1].fix == "headfit adapt MODEL --num-classes 10 --weights CKPT -o OUT"


def test_state_dict_coco_detection_head_counts_background():
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    with torch.device("meta"):
        coco = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    d = explain(raised(lambda: model.load_state_dict(coco)).text)
    assert d.summary == "the checkpoint's head is for 91 classes, the model's for 3"
    assert any("364 = 4*91" in f and "12 = 4*3" in f for f in d.facts)
    assert d.causes[1].fix.startswith("headfit adapt MODEL --num-classes 2 ")


def test_state_dict_module_prefix():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    state = nn.DataParallel(net).state_dict()
    d = explain(raised(lambda: net.load_state_dict(state)).text)
    assert (d.code, d.category) == ("HF107", "state_dict_key_mismatch")
    assert d.causes[0].fix == 'state = {k.removeprefix("module."): v for k, v in state.items()}'


def test_state_dict_whole_training_checkpoint():
    net = nn.Linear(2, 3)
    d = explain(raised(lambda: net.load_state_dict({"model": net.state_dict(), "epoch": 3})).text)
    assert '["model"]' in d.causes[0].fix


# --- locate ------------------------------------------------------------------------------------------------


def test_locate_maps_library_files_to_modules():
    from headfit.explain.locate import owner_of
    from headfit.explain.parse import Frame

    def owner(path, func, source=""):
        return owner_of(Frame(f"/v/site-packages/{path}", 1, func, source))

    assert (
        owner(
            "torchvision/models/detection/fcos.py",
            "forward",
            "bbox_regression = bbox_regression.view(N, -1, 4, H, W)",
        ).module
        == "head.regression_head"
    )
    assert owner("torchvision/models/detection/roi_heads.py", "postprocess_detections").module == "roi_heads"
    assert owner("torchvision/models/detection/transform.py", "resize").module == "transform"
    assert owner("torchvision/models/detection/anchor_utils.py", "forward").module == "anchor_generator"
    assert owner("timm/layers/patch_embed.py", "forward").module == "patch_embed"
    assert owner("torchvision/models/detection/_utils.py", "decode") is None


@pytest.mark.parametrize(
    "builder, outputs_for_3, objects",
    [("retinanet_resnet50_fpn", 27, 3), ("fasterrcnn_mobilenet_v3_large_320_fpn", 4, 3)],
)
def test_state_dict_head_mismatch_counts_background_only_where_the_family_does(
    builder, outputs_for_3, objects
):
    from torchvision.models import get_model

    def build(num_classes):
        return get_model(builder, weights=None, weights_backbone=None, num_classes=num_classes)

    with torch.device("meta"):
        coco, mine = build(91), build(objects + (builder.startswith("fasterrcnn")))
    r = raised(lambda: mine.load_state_dict(coco.state_dict()))
    diagnosis = explain(r.text)
    assert diagnosis.code == "HF106"
    assert str(outputs_for_3) in _numbers_in(diagnosis.facts)
    adapt = next(c.fix for c in diagnosis.causes if c.fix and c.fix.startswith("headfit adapt"))
    assert f"--num-classes {objects} " in adapt
