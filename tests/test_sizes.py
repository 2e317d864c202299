"""``sizes``: accepted input sizes from the model (family rules) and from probing on the meta device."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from headfit.errors import UsageError
from headfit.sizes import SizeAnswer, sizes
from headfit.spec import build_model


class TinyUNet(nn.Module):
    """Three 2x downsamplings with skip connections: H and W must be multiples of 8."""

    def __init__(self, levels: int = 3) -> None:
        super().__init__()
        self.down = nn.ModuleList(nn.Conv2d(4 if i else 3, 4, 3, stride=2, padding=1) for i in range(levels))
        self.up = nn.ModuleList(nn.ConvTranspose2d(4, 4, 2, stride=2) for _ in range(levels))
        self.stem = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1] if len(skips) > 1 else x))
        y = skips.pop()
        for up in self.up:
            y = up(y) + skips.pop()  # only lines up when every level halved exactly
        return y


class FlatHead(nn.Module):
    """Conv + Flatten + Linear sized for 32x32: exactly one size works."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 32 * 32, 5)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_unet_needs_multiples_of_its_downsampling():
    answer = sizes(TinyUNet(), "1x3x64x64")
    assert (answer.multiple_of, answer.minimum, answer.summary) == (8, 8, "H and W multiples of 8, >= 8")
    assert answer.accepts(64, 96) and not answer.accepts(60, 64)
    assert not answer.square_only and answer.accepted_any


def test_deeper_unet_needs_larger_multiples():
    assert sizes(TinyUNet(levels=5), "1x3x64x64").summary == "H and W multiples of 32, >= 32"


def test_flatten_linear_accepts_exactly_one_size():
    answer = sizes(FlatHead(), "1x3x32x32")
    assert answer.summary == "exactly 32x32" and answer.exact == (32, 32)
    assert answer.nearest(40, 30) == (32, 32)


def test_flatten_linear_found_from_a_wrong_reference_size():
    answer = sizes(FlatHead(), "1x3x100x100")  # 100 fails; the fallback sizes find 32
    assert answer.summary == "exactly 32x32"
    assert (100, 100, False) in answer.probes


def test_cnn_minimum_size_where_feature_maps_vanish():
    answer = sizes(build_model("torchvision:alexnet", device="meta"))
    assert answer.summary == "any size >= 63"
    assert answer.accepts(63, 500) and not answer.accepts(62, 62)


def test_resnet_accepts_any_size_within_the_probe_budget():
    answer = sizes(build_model("torchvision:resnet50", device="meta"))
    assert answer.summary == "any size" and len(answer.probes) <= 24


class Patches96(nn.Module):
    """Cuts the image into 96x96 patches with a view: H and W must be multiples of 96."""

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, c, h // 96, 96, w // 96, 96).mean((3, 5))  # (N, C, H/96, W/96)


def test_steps_beyond_powers_of_two_come_from_the_accepted_size():
    answer = sizes(Patches96(), "1x3x192x192")
    assert answer.summary == "H and W multiples of 96, >= 96"
    assert answer.accepts(96, 288) and not answer.accepts(128, 128)


def test_torchvision_maxvit_is_fixed_at_its_build_size():
    assert sizes(build_model("torchvision:maxvit_t", device="meta")).summary == "exactly 224x224"


def test_vit_is_exact_from_its_rule_and_two_probes():
    answer = sizes(build_model("torchvision:vit_b_16", device="meta"))
    assert answer.summary == "exactly 224x224"
    assert [p[2] for p in answer.probes] == [True, False]


def test_detector_resizes_any_size():
    answer = sizes(build_model("torchvision:retinanet_resnet50_fpn", device="meta"))
    assert answer.resized_internally and answer.summary.startswith("any size: ")
    assert "multiples of 32" in answer.summary and "1333" in answer.summary
    assert answer.accepts(17, 3000)


def test_ssd_resizes_to_its_fixed_size_and_pads_nothing():
    answer = sizes(build_model("torchvision:ssd300_vgg16", device="meta"))
    assert answer.resized_internally and "exactly 300x300" in answer.summary
    assert "multiples of" not in answer.summary


def test_a_model_that_accepts_nothing():
    never = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(5, 2, 1))
    answer = sizes(never, "1x3x9x9", max_probes=12)
    assert not answer.accepted_any and answer.summary.startswith("no probed size is accepted")
    assert len(answer.probes) <= 12
    assert answer.notes[0].startswith("every probe failed in `model[1]`, at every size: RuntimeError")


def test_a_detector_with_a_broken_head_fails_at_every_size_and_says_where():
    model = build_model("torchvision:fcos_resnet50_fpn", device="meta")
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, 1, 1, device="meta")
    answer = sizes(model)
    assert not answer.accepted_any and len(answer.probes) == 2  # the transform resizes: two probes tell
    assert any(n.startswith("every probe failed in `head.classification_head`") for n in answer.notes)
    assert any("resized" in n for n in answer.notes)  # what the model says about sizes is kept


def test_no_image_input_is_a_usage_error():
    with pytest.raises(UsageError, match="no image-like input"):
        sizes(nn.Linear(4, 2), "2x4")


@pytest.mark.parametrize(
    "answer, yes, no",
    [
        (SizeAnswer("", True, multiple_of=32, minimum=64), [(64, 96), (320, 64)], [(32, 32), (65, 64)]),
        (SizeAnswer("", True, exact=(224, 224)), [(224, 224)], [(224, 225)]),
        (SizeAnswer("", True, multiple_of=1, minimum=1, square_only=True), [(5, 5)], [(5, 6)]),
        (SizeAnswer("", True, resized_internally=True), [(1, 9999)], []),
        (SizeAnswer("", False), [], [(224, 224)]),
    ],
)
def test_accepts_follows_the_answer(answer, yes, no):
    assert all(answer.accepts(*hw) for hw in yes)
    assert not any(answer.accepts(*hw) for hw in no)


def test_probes_leave_the_model_untouched():
    model = TinyUNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sizes(model, "1x3x64x64")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
