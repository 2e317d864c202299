"""Every torchvision model, and timm architectures of many kinds, pass ``check`` with their defaults.

Built on the meta device (no memory, no weights), so the sweep is about 0.5 s a model on 2 cores.
"""

from __future__ import annotations

import pytest
import torchvision

from headfit.check import check
from headfit.spec import build_model

pytestmark = pytest.mark.slow

TIMM_ARCHITECTURES = [
    # CNNs
    "resnet18", "resnet50d", "resnext50_32x4d", "seresnet50", "densenet121", "dla34", "dpn68",
    "hrnet_w18_small", "inception_v3", "regnetx_002", "regnety_002", "repvgg_a0", "rexnet_100",
    "nfnet_l0", "ghostnet_100", "convnext_atto", "convnextv2_atto",
    # mobile / efficient
    "efficientnet_b0", "efficientnet_lite0", "tf_efficientnetv2_s", "tinynet_a", "mobilenetv2_100",
    "mobilenetv3_large_100", "mobilevit_xxs", "efficientformer_l1", "fastvit_t8", "edgenext_xx_small",
    # transformers and hybrids (two-headed DeiT/LeViT, windowed Swin, EVA, MaxViT, CoAtNet)
    "vit_tiny_patch16_224", "vit_small_patch14_dinov2", "deit_tiny_patch16_224",
    "deit_tiny_distilled_patch16_224", "levit_128", "swin_tiny_patch4_window7_224",
    "swinv2_tiny_window8_256", "eva02_tiny_patch14_224", "maxvit_tiny_tf_224", "coatnet_0_rw_224",
    "beit_base_patch16_224", "cait_xxs24_224", "xcit_nano_12_p16_224", "pvt_v2_b0", "convit_tiny",
    "crossvit_tiny_240", "twins_svt_small",
    # MLPs and pooling mixers
    "mixer_b16_224", "resmlp_12_224", "poolformer_s12",
]  # fmt: skip


def _assert_passes(spec: str) -> None:
    report = check(build_model(spec, device="meta"), name=spec)
    assert report.ok, [f"{p.code} `{p.module}`: {p.summary}" for p in report.problems]
    assert report.trace.completed, report.trace.reason
    assert report.trace.calls, "the trace recorded no module call"
    assert not report.notes  # a family method that raised


@pytest.mark.parametrize("name", torchvision.models.list_models())
def test_every_torchvision_model_passes_check(name):
    _assert_passes(f"torchvision:{name}")


@pytest.mark.parametrize("name", TIMM_ARCHITECTURES)
def test_timm_architectures_pass_check(name):
    pytest.importorskip("timm")
    _assert_passes(f"timm:{name}")


def _swept(test) -> list[str]:
    """The names a parametrized test really runs (read from its marks, not from a list beside it)."""
    marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
    return [value for mark in marks for value in mark.args[1]]


def test_the_timm_sweep_is_wide_enough():
    """The sweep runs at least 30 real timm models from at least 20 of timm's model families (source
    modules: a list of 30 ResNet depths would not be wide)."""
    timm = pytest.importorskip("timm")
    from timm.models import _registry

    swept = _swept(test_timm_architectures_pass_check)
    assert len(set(swept)) >= 30
    assert all(timm.is_model(name) for name in swept), [n for n in swept if not timm.is_model(n)]
    families = {_registry._model_to_module[name] for name in swept}
    assert len(families) >= 20, sorted(families)
