"""HF108-HF124: each message is produced by running the faulty torch/torchvision/timm/einops code here
(so the formats stay true to the installed versions), then diagnosed from the exception object and from
its text. The CUDA-only messages are quoted from torch's sources and marked as such."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from headfit.explain import explain

pytestmark = pytest.mark.filterwarnings("ignore")


def raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except Exception as exc:  # the error under test
        return exc
    raise AssertionError("the faulty code did not raise")


def both(exc: BaseException):
    """The diagnosis of the live exception and of its pasted traceback must agree on the code."""
    live = explain(exc)
    pasted = explain("".join(traceback.format_exception(exc)))
    assert live.code == pasted.code, (live.code, pasted.code)
    return live


def facts(d) -> str:
    return "\n".join(d.facts)


# --- HF108 ---------------------------------------------------------------------------------------


def test_broadcast_spatial_stride():
    d = both(raised(lambda: torch.zeros(1, 3, 56, 56) + torch.zeros(1, 3, 224, 224)))
    assert (d.code, d.category) == ("HF108", "tensor_size_mismatch")
    assert "224 = 4 x 56" in facts(d)
    assert "F.interpolate" in d.causes[0].fix


def test_broadcast_class_axis():
    d = both(raised(lambda: torch.zeros(8, 10) - torch.zeros(8, 3)))
    assert d.code == "HF108"
    assert "one_hot" in d.causes[0].fix and "num_classes=10" in d.causes[0].fix


def test_broadcast_on_meta_device_gives_both_shapes():
    d = both(raised(lambda: torch.zeros(2, 5, device="meta") * torch.zeros(2, 3, device="meta")))
    assert d.code == "HF108"
    assert "[2, 5]" in facts(d) and "[2, 3]" in facts(d)


def test_cat_unet_skip():
    d = both(raised(lambda: torch.cat([torch.zeros(1, 64, 28, 28), torch.zeros(1, 32, 29, 29)], 1)))
    assert d.code == "HF108"
    assert "29 // 2 = 14" in facts(d)
    assert "U-Net" in d.causes[0].summary and "F.interpolate" in d.causes[0].fix


def test_stack_images_of_different_sizes():
    d = both(
        raised(lambda: torch.utils.data.default_collate([torch.zeros(3, 224, 224), torch.zeros(3, 200, 300)]))
    )
    assert d.code == "HF108"
    assert "Resize((224, 224))" in d.causes[0].fix and "zip(*batch)" in d.causes[0].fix


def test_stack_detection_boxes():
    d = both(raised(lambda: torch.stack([torch.zeros(2, 4), torch.zeros(5, 4)])))
    assert d.causes[0].fix == "DataLoader(..., collate_fn=lambda batch: tuple(zip(*batch)))"


def test_expand_finds_the_aligned_view():
    d = both(raised(lambda: torch.zeros(3).expand(3, 4)))
    assert d.code == "HF108"
    assert d.causes[0].fix == "x.view(3, 1).expand(3, 4)"


# --- HF109 - HF112 -------------------------------------------------------------------------------


def test_batch_size_from_view_merging_a_2x2_map():
    x = torch.zeros(16, 512, 2, 2)
    d = both(
        raised(
            lambda: F.cross_entropy(nn.Linear(512, 10)(x.view(-1, 512)), torch.zeros(16, dtype=torch.long))
        )
    )
    assert (d.code, d.category) == ("HF109", "batch_size_mismatch")
    assert "64 = 4 x 16" in facts(d) and "4 = 2x2" in facts(d)
    assert "torch.flatten(x, 1)" in d.causes[0].fix


def test_batch_size_from_flattened_one_hot():
    d = both(raised(lambda: F.cross_entropy(torch.zeros(4, 5), torch.zeros(4, 5, dtype=torch.long).view(-1))))
    assert "20 = 5 x 4" in facts(d)
    assert "argmax(1)" in d.causes[0].fix


def test_target_out_of_bounds_names_a_detector_only_where_one_can_be():
    exc = raised(lambda: F.cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3])))
    d = both(exc)
    assert (d.code, d.category) == ("HF110", "target_out_of_bounds")
    assert "at least 4 classes" in facts(d)
    # the traceback shows the user's own cross_entropy call: no detector's background to blame
    assert not any(c.module == "roi_heads.box_predictor" for c in d.causes)
    bare = explain(f"IndexError: {exc}")  # no traceback: a detector is one possibility among others
    assert any(
        c.module == "roi_heads.box_predictor" and "4)" in c.fix and c.confidence < 0.5 for c in bare.causes
    )


def test_negative_label_is_an_ignore_marker_or_a_shifted_class():
    d = both(raised(lambda: F.nll_loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, -1]))))
    assert d.code == "HF110"
    assert "ignore_index=-1" in d.causes[0].fix
    assert "silently drop that class" in d.causes[1].summary
    assert any("torch.unique(target, return_counts=True)" in f for f in d.facts)


def test_detector_labels_without_background_slot():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64
    )
    target = {"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([3])}
    d = both(raised(lambda: model([torch.rand(3, 64, 64)], [target])))
    assert d.code == "HF110"
    assert d.causes[0].module == "roi_heads.box_predictor"
    assert "FastRCNNPredictor" in d.causes[0].fix


@pytest.mark.parametrize(  # quoted: these need a GPU (torch's Loss.cu / Indexing.cu assertion texts)
    "text",
    [
        "RuntimeError: CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1",
        "../aten/src/ATen/native/cuda/Loss.cu:250: nll_loss_forward_reduce_cuda_kernel_2d: block: [0,0,0], thread: [5,0,0] Assertion `t >= 0 && t < n_classes` failed.",
    ],
)
def test_cuda_device_side_assert_quoted(text):
    d = explain(text)
    assert d.code == "HF110"
    assert "CUDA_LAUNCH_BLOCKING=1" in facts(d)
    assert "num_classes" in d.causes[0].fix


def test_cuda_index_select_assert_quoted():
    text = "../aten/src/ATen/native/cuda/Indexing.cu:1141: indexSelectLargeIndex: block: [0,0,0], thread: [0,0,0] Assertion `srcIndex < srcSelectDimSize` failed."
    d = explain(text)
    assert d.code == "HF110" and "num_embeddings" in d.causes[0].fix


@pytest.mark.parametrize("target", [torch.zeros(4, 1, dtype=torch.long), torch.eye(4, 3, dtype=torch.long)])
def test_multi_target(target):
    d = both(raised(lambda: F.cross_entropy(torch.zeros(4, 3), target)))
    assert (d.code, d.category) == ("HF111", "multi_target")
    fix = "target.squeeze(1)" if target.shape[1] == 1 else "target.argmax(1)"
    assert fix in d.causes[0].fix


@pytest.mark.parametrize("loss", [F.binary_cross_entropy_with_logits, F.binary_cross_entropy])
def test_bce_target_size(loss):
    d = both(raised(lambda: loss(torch.full((16, 1), 0.5), torch.zeros(16))))
    assert (d.code, d.category) == ("HF112", "bce_target_size")
    assert "target.unsqueeze(1).float()" in d.causes[0].fix


def test_bce_class_index_target_against_c_outputs():
    d = both(raised(lambda: F.binary_cross_entropy_with_logits(torch.zeros(8, 5), torch.zeros(8))))
    assert d.causes[0].fix.startswith("target = F.one_hot(target, num_classes=5)")


def test_bce_integer_targets():
    d = both(
        raised(lambda: F.binary_cross_entropy_with_logits(torch.zeros(16), torch.zeros(16, dtype=torch.long)))
    )
    assert d.code == "HF112"
    assert "target.float()" in d.causes[0].fix


# --- HF113 - HF115 -------------------------------------------------------------------------------


def test_kernel_larger_than_map():
    d = both(raised(lambda: F.conv2d(torch.zeros(1, 512, 2, 2), torch.zeros(10, 512, 3, 3))))
    assert (d.code, d.category) == ("HF113", "kernel_too_large")
    assert "2x2" in d.summary and "3x3" in d.summary
    assert "32*3 = 96" in facts(d)
    assert any("AdaptiveAvgPool2d" in c.fix for c in d.causes)


def test_output_size_too_small():
    net = nn.Sequential(nn.Conv2d(3, 512, 3, stride=32, padding=1), nn.MaxPool2d(2))
    d = both(raised(lambda: net(torch.zeros(1, 3, 32, 32))))
    assert d.code == "HF113"
    assert "1x1 (512 channels)" in facts(d) and "32*2 = 64" in facts(d)


def test_batchnorm_single_value_after_global_pooling():
    d = both(raised(lambda: nn.BatchNorm2d(256)(torch.zeros(1, 256, 1, 1))))
    assert (d.code, d.category) == ("HF114", "batchnorm_single_value")
    assert "values per channel = 1*1*1 = 1" in facts(d) and "global pooling" in facts(d)
    assert "drop_last=True" in d.causes[0].fix


def test_running_stats_size():
    net = nn.Sequential(nn.Conv2d(3, 128, 3), nn.BatchNorm2d(64))
    d = both(raised(lambda: net(torch.zeros(2, 3, 8, 8))))
    assert (d.code, d.category) == ("HF115", "running_stats_size")
    assert "input has 128 channels" in facts(d) and "num_features=64" in facts(d)
    assert d.causes[0].fix.startswith("nn.BatchNorm2d(128)")


# --- HF116 - HF120: torchvision detection --------------------------------------------------------


@pytest.fixture(scope="module")
def rcnn():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64
    )


def _train_step(model, boxes):
    return lambda: model.train()(
        [torch.rand(3, 64, 64)], [{"boxes": boxes, "labels": torch.ones(1, dtype=torch.long)}]
    )


def test_empty_boxes_need_four_columns(rcnn):
    d = both(raised(_train_step(rcnn, torch.zeros(0))))
    assert (d.code, d.category) == ("HF116", "detection_target_invalid")
    assert "torch.zeros((0, 4)" in d.causes[0].fix


def test_single_box_without_n_axis(rcnn):
    d = both(raised(_train_step(rcnn, torch.tensor([1.0, 2.0, 30.0, 40.0]))))
    assert d.causes[0].fix == "target['boxes'] = boxes.reshape(-1, 4)"


def test_boxes_as_list(rcnn):
    d = both(raised(_train_step(rcnn, [[1.0, 2.0, 30.0, 40.0]])))
    assert d.code == "HF116" and "torch.as_tensor" in d.causes[0].fix


def test_xywh_boxes_are_recognised(rcnn):
    d = both(raised(_train_step(rcnn, torch.tensor([[30.0, 20.0, 10.0, 8.0]]))))
    assert d.code == "HF116"
    assert "width 10 - 30 = -20" in facts(d)
    assert "read as x, y, w, h it is a valid box: 30, 20, 40, 28" in facts(d)
    assert 'box_convert(boxes, in_fmt="xywh", out_fmt="xyxy")' in d.causes[0].fix


def test_train_mode_without_targets(rcnn):
    d = both(raised(lambda: rcnn.train()([torch.rand(3, 64, 64)])))
    assert d.code == "HF116" and d.causes[0].fix.startswith("model.eval()")


def test_builder_pinned_num_classes():
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    with torch.device("meta"):
        d = both(raised(lambda: fasterrcnn_resnet50_fpn(weights="DEFAULT", num_classes=3)))
    assert (d.code, d.category) == ("HF117", "builder_num_classes_weights")
    assert "COCO detection" in facts(d)
    assert "headfit adapt torchvision:fasterrcnn_resnet50_fpn --num-classes 2" in d.causes[0].fix


def test_builder_pinned_aux_loss():
    from torchvision.models.segmentation import deeplabv3_resnet50

    d = both(raised(lambda: deeplabv3_resnet50(weights="DEFAULT", aux_loss=False)))
    assert d.code == "HF117" and "aux_classifier = None" in d.causes[0].fix


def test_anchor_generator_feature_map_count():
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    gen = AnchorGenerator(sizes=((32,),), aspect_ratios=((0.5, 1.0, 2.0),))
    images = ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    d = both(raised(lambda: gen(images, [torch.zeros(1, 8, 16, 16), torch.zeros(1, 8, 8, 8)])))
    assert (d.code, d.category) == ("HF118", "anchor_feature_map_count")
    assert d.causes[0].module == "rpn.anchor_generator"
    assert "aspect_ratios=((0.5, 1.0, 2.0),) * 5" in d.causes[0].fix


@pytest.mark.parametrize(
    ("builder", "anchors", "emitted"), [("retinanet_resnet50_fpn", 9, 6), ("fcos_resnet50_fpn", 1, 6)]
)
def test_postprocess_split_recovers_the_class_ratio(builder, anchors, emitted):
    from torchvision.models import detection

    with torch.device("meta"):  # skip the slow random init: only the shapes matter for this error
        model = getattr(detection, builder)(
            weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64
        )
    model = model.to_empty(device="cpu").eval()
    model.head.classification_head.cls_logits = nn.Conv2d(256, anchors * emitted, 3, padding=1)
    exc = raised(lambda: model([torch.rand(3, 64, 64)]))
    d = both(exc)
    assert (d.code, d.category) == ("HF119", "split_sizes_mismatch")
    top = d.causes[0]
    assert (top.module, top.attribute) == ("head.classification_head", "num_classes")
    assert f"{emitted // 3}x" in top.summary  # 6 classes emitted / 3 in num_classes
    text = str(exc)
    sizes = [int(s) for s in text.split("split_sizes=[")[1].rstrip("]").split(",")]
    assert f"= {sum(sizes):,}" in facts(d)


def test_roi_box_predictor_sized_for_other_classes():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, min_size=64, max_size=64
    ).eval()
    model.roi_heads.box_predictor.bbox_pred = nn.Linear(1024, 4 * 3)
    model.roi_heads.score_thresh = 0.0
    d = both(raised(lambda: model([torch.rand(3, 64, 64)])))
    assert (d.code, d.category) == ("HF120", "roi_index_out_of_bounds")
    assert (d.causes[0].module, d.causes[0].attribute) == (
        "roi_heads.box_predictor.bbox_pred",
        "out_features",
    )
    assert "FastRCNNPredictor" in d.causes[0].fix


def test_plain_index_error_elsewhere_is_not_roi():
    d = explain(raised(lambda: torch.zeros(3)[torch.tensor([5])]))
    assert d.code != "HF120"


# --- HF121 - HF122 -------------------------------------------------------------------------------


def test_torchvision_vit_image_size():
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.vit_b_16(weights=None)
        d = both(raised(lambda: model(torch.zeros(1, 3, 384, 384))))
    assert (d.code, d.category) == ("HF121", "image_size_mismatch")
    assert "384 / 16 = 24" in facts(d)
    assert d.causes[0].fix == "transforms.Resize((224, 224))"


def test_timm_vit_image_size():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model("vit_tiny_patch16_224")
        d = both(raised(lambda: model(torch.zeros(1, 3, 224, 384))))
    assert d.code == "HF121"
    assert "img_size=384" in d.causes[1].fix


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_position_embedding_tokens_beat_the_generic_broadcast(device):
    tokens, pos_embed = torch.zeros(1, 577, 8, device=device), torch.zeros(1, 197, 8, device=device)
    d = both(raised(lambda: tokens + pos_embed))
    assert d.code == "HF121"
    assert "577 tokens = 24*24 patches + 1 class token" in facts(d)
    assert "384x384 input against a position embedding for 224x224" in facts(d)


def test_einops_indivisible_axis():
    einops = pytest.importorskip("einops")
    x = torch.zeros(1, 3, 225, 225)
    d = both(raised(lambda: einops.rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=16, p2=16)))
    assert (d.code, d.category) == ("HF122", "einops_error")
    assert "224 = 14 x 16 and 240 = 15 x 16" in facts(d)
    assert d.causes[0].fix.startswith("transforms.Resize((224, 224))")


def test_einops_missing_batch_axis():
    einops = pytest.importorskip("einops")
    d = both(raised(lambda: einops.rearrange(torch.zeros(3, 224, 224), "b c h w -> b (h w) c")))
    assert d.code == "HF122" and d.causes[0].fix.startswith("x = x.unsqueeze(0)")


# --- HF123 - HF124 -------------------------------------------------------------------------------


def test_float_labels():
    d = both(raised(lambda: F.nll_loss(torch.zeros(4, 3), torch.zeros(4))))
    assert (d.code, d.category) == ("HF123", "dtype_mismatch")
    assert "target.long()" in d.causes[0].fix


def test_half_weights_with_float_input():
    d = both(raised(lambda: F.linear(torch.zeros(2, 3), torch.zeros(4, 3, dtype=torch.half))))
    assert d.code == "HF123" and "expected float16, found float32" in facts(d)
    assert "autocast" in d.causes[0].fix


def test_float64_input_from_numpy():
    d = both(raised(lambda: nn.Conv2d(3, 4, 3)(torch.zeros(1, 3, 8, 8, dtype=torch.float64))))
    assert d.code == "HF123" and ".float()" in d.causes[0].fix


def test_integer_input_to_linear():
    d = both(raised(lambda: nn.Linear(3, 4)(torch.zeros(2, 3, dtype=torch.long))))
    assert d.code == "HF123" and "found int64" in facts(d)


def test_bce_float_expected():
    d = both(raised(lambda: F.binary_cross_entropy(torch.full((4,), 0.5), torch.zeros(4, dtype=torch.long))))
    assert d.code == "HF123" and "expected float32, found int64" in facts(d)


@pytest.mark.parametrize(  # quoted: these need a GPU (torch's device checks)
    ("text", "input_side"),
    [
        (
            "RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
            None,
        ),
        (
            "RuntimeError: Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) should be the same",
            "cpu",
        ),
        (
            "RuntimeError: Input type (torch.cuda.FloatTensor) and weight type (torch.FloatTensor) should be the same",
            "cuda",
        ),
    ],
)
def test_device_mismatch_quoted(text, input_side):
    d = explain(text)
    assert (d.code, d.category) == ("HF124", "device_mismatch")
    if input_side == "cuda":  # the weights stayed on the CPU: the model never moved, or a head replaced later
        assert "never moved" in d.causes[0].summary and d.causes[0].fix.startswith("model = model.to(device)")
        assert "after replacing the head" in d.causes[1].fix
    else:
        assert "x.to(device)" in d.causes[0].fix


def test_meta_device_mismatch():
    d = both(raised(lambda: nn.Linear(3, 2, device="meta")(torch.zeros(2, 3))))
    assert d.code == "HF124" and "meta" in facts(d)


def test_half_on_cpu_not_implemented_quoted():
    d = explain("RuntimeError: \"addmm_impl_cpu_\" not implemented for 'Half'")
    assert d.code == "HF123" and d.causes[0].fix.startswith("model.float()")
