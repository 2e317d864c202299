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
from headfit.enrich import enrich
from headfit.errors import UsageError
from headfit.families import Evidence, family_for

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
    assert any("pretrained rows of source classes 4, 1, 2" in n for n in summary.notes)
    assert not any("N(0, 0.01)" in n for n in summary.notes)  # kept rows are not torchvision's init
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


def test_explain_failure_names_the_culprit_and_enrich_the_users_name():
    model = build("fcos_resnet50_fpn")
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, padding=1, device="meta")
    with pytest.raises(RuntimeError) as raised:  # the real error, on meta: instant
        model.head.classification_head([torch.empty(2, 256, 100, 100, device="meta")])
    diagnosis = Diagnosis("HF101", "view_size_mismatch", "RuntimeError", str(raised.value), "")
    evidence = family_for(model).explain_failure(model, "head.classification_head", diagnosis)
    assert any("emits 2 channels; `num_classes` says 91; `num_anchors` is 1" in f for f in evidence.facts)
    top = max(evidence.causes, key=lambda c: c.confidence)
    assert (top.module, top.attribute, top.fix) == (
        "head.classification_head",
        "num_classes",
        "model.head.classification_head.num_classes = 2",
    )
    enriched = enrich(diagnosis, model, "head.classification_head", prefix="net")
    assert enriched.causes[0].fix == "net.head.classification_head.num_classes = 2"


def test_num_classes_set_without_the_conv_offers_both_directions():
    """RetinaNet built for COCO, `num_classes` set to 3 by hand: keep the conv (91) or re-head for 3."""
    model = build("retinanet_resnet50_fpn")
    model.head.classification_head.num_classes = 3
    diagnosis = Diagnosis("HF119", "split", "RuntimeError", "split_with_sizes expects ...", "")
    causes = sorted(
        family_for(model).explain_failure(model, "", diagnosis).causes, key=lambda c: -c.confidence
    )
    assert [c.fix for c in causes] == [
        "model.head.classification_head.num_classes = 91",
        "headfit.adapt(model, 3)",
    ]
    assert causes[1].module == "head.classification_head.cls_logits"


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


# --- adapt on real CPU models: shapes, attributes, bit-identical rest, keep rows, one train step ---------


def _adapt_and_compare(name: str, **options):
    torch.manual_seed(0)
    model = build(name, device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    family = family_for(model)
    summary = family.adapt(model, 3, **options)
    after = model.state_dict()
    replaced = tuple(f"{path}." for path in summary.replaced)
    for key, value in before.items():
        if not key.startswith(replaced):
            assert torch.equal(after[key], value), key
    changed = {k for k in after if k.startswith(replaced)}
    assert changed and all(after[k].shape != before[k].shape for k in changed if k in before)
    assert family.lint(model) == []
    assert family.num_classes(model) == 3
    return model, family, summary, before


FAST = ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large", "fcos_resnet50_fpn"]


@pytest.mark.parametrize("name", FAST)
def test_adapt_changes_only_the_heads(name):
    _adapt_and_compare(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(BUILDERS) - set(FAST)))
def test_adapt_changes_only_the_heads_every_builder(name):
    options = {"num_keypoints": 5} if name.startswith("keypoint") else {}
    model, _, summary, _ = _adapt_and_compare(name, **options)
    if name.startswith("maskrcnn"):
        assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    if name.startswith("keypoint"):
        kp = model.roi_heads.keypoint_predictor
        assert (kp.kps_score_lowres.out_channels, kp.out_channels) == (5, 5)


def test_rcnn_adapt_shapes_notes_and_keep_rows():
    model, _, summary, before = _adapt_and_compare("fasterrcnn_mobilenet_v3_large_320_fpn", keep=[1, 3, 18])
    box = model.roi_heads.box_predictor
    assert (box.cls_score.out_features, box.bbox_pred.out_features) == (4, 16)
    assert summary.head_outputs == 4 and summary.kept_rows == [0, 1, 3, 18]
    assert "counts background: the box predictor now has 4 outputs for your 3 classes" in summary.notes[0]
    old_cls, old_box = (
        before["roi_heads.box_predictor.cls_score.weight"],
        before["roi_heads.box_predictor.bbox_pred.weight"],
    )
    for new_row, src in enumerate([0, 1, 3, 18]):
        assert torch.equal(box.cls_score.weight[new_row], old_cls[src])
        assert torch.equal(
            box.bbox_pred.weight[4 * new_row : 4 * new_row + 4], old_box[4 * src : 4 * src + 4]
        )


def test_ssd_adapt_keeps_background_and_rows_per_anchor():
    model, _, summary, before = _adapt_and_compare("ssdlite320_mobilenet_v3_large", keep=[5, 2, 7])
    conv = model.head.classification_head.module_list[0][1]
    assert model.head.classification_head.num_columns == 4 and conv.out_channels == 6 * 4
    old = before["head.classification_head.module_list.0.1.weight"]
    for a in range(6):
        for i, src in enumerate([0, 5, 2, 7]):
            assert torch.equal(conv.weight[a * 4 + i], old[a * 91 + src])


def test_rcnn_keep_rejects_the_background_row():
    model = build("fasterrcnn_mobilenet_v3_large_320_fpn")
    with pytest.raises(UsageError, match="background"):
        family_for(model).adapt(model, 2, keep=[0, 1])
    with pytest.raises(UsageError, match="num_keypoints"):
        family_for(model).adapt(model, 2, num_keypoints=3)


@pytest.mark.slow  # 36 s here (pytest --durations, -n 2)
@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"])
def test_one_train_step_and_eval_after_adapt(name):
    torch.manual_seed(0)
    model = build(name, device="cpu")
    family = family_for(model)
    family.adapt(model, 3)
    batch = family.smoke_batch(model, 3)
    model.train()
    loss = family.smoke_loss(model, model(*batch.args, **batch.kwargs), batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert (
        model.roi_heads.box_predictor.cls_score.weight.grad is not None
        if hasattr(model, "roi_heads")
        else True
    )
    model.eval()
    with torch.no_grad():
        assert family.output_classes(model, model(*batch.args)) == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_one_train_step_every_builder(name):
    torch.manual_seed(0)
    model = build(name, device="cpu")
    if model.transform.fixed_size is None:  # keep the CPU forward tiny (SSD300's VGG needs its 300x300)
        model.transform.min_size, model.transform.max_size = (128,), 128
    if hasattr(model, "roi_heads"):  # fewer proposals and sampled RoIs: same code path, less work
        model.rpn._pre_nms_top_n = model.rpn._post_nms_top_n = {"training": 64, "testing": 64}
        model.roi_heads.fg_bg_sampler.batch_size_per_image = 16
    family = family_for(model)
    family.adapt(model, 3, **({"num_keypoints": 4} if name.startswith("keypoint") else {}))
    batch = family.smoke_batch(model, 3)
    loss = family.smoke_loss(model, model.train()(*batch.args, **batch.kwargs), batch)
    assert torch.isfinite(loss)
    loss.backward()


# --- live evidence and targets ------------------------------------------------------------------------


def test_check_targets_finds_label_box_and_shape_mistakes():
    model = build("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=4)
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([7])},
        {"boxes": torch.tensor([[10.0, 20.0, 5.0, 8.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    causes = family_for(model).check_targets(model, targets, name="batch").causes
    summaries = " | ".join(c.summary for c in causes)
    expected = "label 7 but the head has 4 outputs (3 classes + the background): valid labels are 1..3"
    assert expected in summaries and "(x, y, w, h)" in summaries and "need [N, 4]" in summaries
    label = only_label_cause(causes)
    assert label.fix.endswith("`headfit.adapt(model, 7)`")  # 7 object classes + the background
    assert any(c.fix.startswith('batch[2]["boxes"] = torch.zeros((0, 4))') for c in causes)


def only_label_cause(causes):
    (label,) = [c for c in causes if c.attribute == "labels"]
    return label


def test_check_targets_counts_label_zero_as_background_only_where_the_family_does():
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([0, 1])}]
    rcnn = build("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=4)
    assert "background" in only_label_cause(family_for(rcnn).check_targets(rcnn, targets).causes).summary
    fcos = build("fcos_resnet50_fpn", num_classes=3)
    assert family_for(fcos).check_targets(fcos, targets).causes == []


def test_a_classifier_family_checks_no_targets():
    from torchvision.models import resnet18

    with torch.device("meta"):
        model = resnet18(weights=None)
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.tensor([99])}]
    assert family_for(model).check_targets(model, targets) == Evidence()


def test_explain_failure_reads_a_real_target_out_of_bounds():
    model = build("retinanet_resnet50_fpn", num_classes=3)
    with pytest.raises(IndexError) as raised:
        torch.nn.functional.cross_entropy(torch.zeros(1, 4), torch.tensor([5]))
    diagnosis = Diagnosis("HF1xx", "index", "IndexError", str(raised.value), "")
    causes = family_for(model).explain_failure(model, "", diagnosis).causes
    assert any("label is 5 but the head has 3 classes: valid labels are 0..2" in c.summary for c in causes)
    (label,) = [c for c in causes if c.attribute == "labels"]
    assert label.fix.endswith("`headfit.adapt(model, 6)`")


def test_explain_failure_on_rcnn_postprocess_names_bbox_pred():
    model = build("fasterrcnn_resnet50_fpn")
    model.roi_heads.box_predictor.cls_score = nn.Linear(1024, 4, device="meta")
    diagnosis = Diagnosis(
        "HF1xx", "index", "IndexError", "index 3 is out of bounds for dimension 1 with size 0", ""
    )
    evidence = family_for(model).explain_failure(model, "roi_heads", diagnosis)
    top = max(evidence.causes, key=lambda c: c.confidence)
    assert (top.module, top.attribute) == ("roi_heads.box_predictor", "bbox_pred")
    assert top.fix.startswith("model.roi_heads.box_predictor = ")
