"""HF106 beyond a Linear head for another class count: each mismatch is produced by loading one real
torchvision/timm model's state_dict into another (on the meta device: shapes only, no weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models

from explain_support import raised
from headfit.explain import explain

pytestmark = pytest.mark.filterwarnings("ignore")


def load(model: nn.Module, source: nn.Module):
    d = explain(raised(lambda: model.load_state_dict(source.state_dict())).text)
    assert (d.code, d.category) == ("HF106", "state_dict_size_mismatch")
    return d


def facts(d) -> str:
    return "\n".join(d.facts)


def test_position_embedding_for_another_image_size():
    with torch.device("meta"):
        d = load(models.vit_b_16(), models.vit_b_16(image_size=384))
    assert (
        "577 tokens in the checkpoint = 24x24 patches + 1 class token, 197 in the model = 14x14 + 1"
        in facts(d)
    )
    assert d.summary.startswith("the checkpoint's position embedding is for 384x384 images")
    assert "image_size=384" in d.causes[0].fix
    assert "interpolate_embeddings(224, 16, state)" in d.causes[1].fix


def test_first_conv_for_grayscale_sums_the_pretrained_filters():
    with torch.device("meta"):
        gray = models.resnet18()
        gray.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        d = load(gray, models.resnet18())
    assert d.summary == "the checkpoint's first conv takes 3 channels, the model's 1"
    assert (d.causes[0].module, d.causes[0].attribute) == ("conv1", "in_channels")
    assert (
        "state['conv1.weight'].sum(dim=1, keepdim=True)" in d.causes[0].fix
        and "in_chans=1" in d.causes[0].fix
    )


def test_basic_blocks_into_bottlenecks():
    with torch.device("meta"):
        d = load(models.resnet50(), models.resnet18())
    assert "BasicBlock" in d.summary and "Bottleneck" in d.summary
    assert d.causes[0].fix.startswith("model = resnet18()")


@pytest.mark.parametrize(
    ("model", "checkpoint", "words"),
    [
        (lambda: models.resnet50(), lambda: models.wide_resnet50_2(), "2x wider"),
        (lambda: models.mobilenet_v2(), lambda: models.mobilenet_v2(width_mult=0.5), "2x narrower"),
    ],
)
def test_width_multiplier(model, checkpoint, words):
    with torch.device("meta"):
        d = load(model(), checkpoint())
    assert words in d.summary


def test_a_hidden_width_under_the_head_is_not_a_class_count_and_the_drop_takes_the_whole_head():
    with torch.device("meta"):
        mine = models.vgg16()
        mine.classifier = nn.Sequential(
            nn.Linear(25088, 1024),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(1024, 10),
        )
        d = load(mine, models.vgg16())
    assert d.summary == "the checkpoint's head is for 1000 classes, the model's for 10"
    assert '"classifier.0.", "classifier.3.", "classifier.6."' in d.causes[0].fix
    assert any("hidden layer of the head" in f for f in d.facts)


def test_segmentation_class_convs_drop_both_heads():
    with torch.device("meta"):
        build = models.segmentation.deeplabv3_resnet50
        d = load(
            build(num_classes=3, aux_loss=True, weights_backbone=None),
            build(aux_loss=True, weights_backbone=None),
        )
    assert d.summary == "the checkpoint's head is for 21 classes, the model's for 3"
    assert '"aux_classifier.4.", "classifier.4."' in d.causes[0].fix


def test_timm_position_embedding_is_resampled_with_timm():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        d = load(timm.create_model("vit_tiny_patch16_224"), timm.create_model("vit_tiny_patch16_384"))
    assert "resample_abs_pos_embed(state['pos_embed'], (14, 14), num_prefix_tokens=1)" in d.causes[1].fix


def test_hugging_face_hint_gives_ignore_mismatched_sizes():
    message = (
        "RuntimeError: Error(s) in loading state_dict for ConvNextForImageClassification:\n"
        "\tsize mismatch for classifier.weight: copying a param with shape torch.Size([1000, 768]) from checkpoint, "
        "the shape in current model is torch.Size([2, 768]).\n"
        "\tsize mismatch for classifier.bias: copying a param with shape torch.Size([1000]) from checkpoint, the "
        "shape in current model is torch.Size([2]).\n"
        "\tYou may consider adding `ignore_mismatched_sizes=True` in the model `from_pretrained` method."
    )
    d = explain(message)
    assert d.causes[0].fix == (
        "ConvNextForImageClassification.from_pretrained(checkpoint, num_labels=2, ignore_mismatched_sizes=True)"
    )


def test_yolo_detect_convs():
    message = (
        "size mismatch for model.24.m.0.weight: copying a param with shape torch.Size([255, 128, 1, 1]) from "
        "checkpoint, the shape in current model is torch.Size([18, 128, 1, 1]).\n"
        "size mismatch for model.24.m.0.bias: copying a param with shape torch.Size([255]) from checkpoint, the shape "
        "in current model is torch.Size([18])."
    )
    d = explain(message)
    assert d.summary == "the checkpoint's YOLO head is for 80 classes, the model's for 1"
    assert "255 = 3*(80+5)" in facts(d) and '"model.24.m.0."' in d.causes[0].fix
