"""Generate ``src/headfit/data/backbone_widths.json``: the feature width each backbone hands its classifier.

``headfit explain`` names the backbones a Linear's in_features matches ("2048 = resnet50/101/152") without
importing torch, so the table is generated once, here, and shipped as data. Every model is built on the
meta device (no weights, no memory). Run: ``python scripts/gen_backbone_widths.py``.
"""

from __future__ import annotations

import fnmatch
import json
import warnings
from collections import defaultdict
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "src" / "headfit" / "data" / "backbone_widths.json"
TIMM_PATTERNS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet50d",
    "resnext50_32x4d",
    "seresnext50_32x4d",
    "wide_resnet50_2",
    "resnetv2_50",
    "efficientnet_b[0-7]",
    "efficientnetv2_[sml]",
    "tf_efficientnetv2_[sml]",
    "mobilenetv2_100",
    "mobilenetv3_large_100",
    "mobilenetv3_small_100",
    "mobilenetv4_conv_small",
    "convnext_atto",
    "convnext_nano",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "convnext_large",
    "convnextv2_tiny",
    "convnextv2_base",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch32_224",
    "vit_large_patch16_224",
    "vit_huge_patch14_224",
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "deit_base_patch16_224",
    "swin_tiny_patch4_window7_224",
    "swin_small_patch4_window7_224",
    "swin_base_patch4_window7_224",
    "swinv2_tiny_window8_256",
    "regnety_00[48]",
    "regnety_016",
    "regnety_032",
    "regnetx_002",
    "densenet121",
    "densenet169",
    "densenet201",
    "inception_v3",
    "inception_v4",
    "xception65",
    "efficientformer_l1",
    "levit_128",
    "mixer_b16_224",
    "beit_base_patch16_224",
    "eva02_tiny_patch14_224",
    "eva02_small_patch14_224",
    "eva02_base_patch14_224",
    "caformer_s18",
    "convformer_s18",
    "poolformer_s12",
    "coatnet_0_rw_224",
    "maxvit_tiny_tf_224",
    "edgenext_small",
    "ghostnet_100",
    "hrnet_w18",
    "hrnet_w32",
    "dla34",
    "cspdarknet53",
    "cspresnet50",
    "darknet53",
    "rexnet_100",
    "tinynet_a",
    "lcnet_100",
    "mnasnet_100",
    "fbnetc_100",
    "dpn68",
    "res2net50_26w_4s",
    "resnest50d",
    "nfnet_l0",
    "dm_nfnet_f0",
    "repvgg_a2",
    "vgg16",
    "vgg19_bn",
    "fastvit_t8",
    "fastvit_sa12",
    "mobilevit_s",
    "mobilevitv2_100",
    "tiny_vit_5m_224",
    "hgnetv2_b0",
    "hgnetv2_b4",
    "efficientvit_b0",
    "efficientvit_m0",
    "pvt_v2_b0",
    "pvt_v2_b2",
    "twins_svt_small",
    "crossvit_small_240",
    "cait_xxs24_224",
    "xcit_tiny_12_p16_224",
    "volo_d1_224",
    "gcvit_tiny",
    "nextvit_small",
    "davit_tiny",
    "focalnet_tiny_srf",
    "sequencer2d_s",
]


def classifier_width(model: nn.Module, num_classes: int = 1000) -> int | None:
    """in_features of the last layer that produces ``num_classes`` outputs (a Linear or a 1x1 conv)."""
    width = None
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            width = module.in_features
        elif isinstance(module, nn.Conv2d) and module.out_channels == num_classes:
            width = module.in_channels
    return width


def _build(builder, name: str, **kwargs) -> nn.Module | None:
    """The model on the meta device; None (with a note) for the few whose __init__ needs real data."""
    try:
        with torch.device("meta"):
            return builder(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a builder we cannot use is skipped, not fatal
        print(f"skipped {name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return None


def torchvision_widths() -> dict[str, int]:
    widths = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        model = _build(torchvision.models.get_model, name, weights=None)
        width = None if model is None else classifier_width(model)
        if width is not None:
            widths[name] = width
    return widths


def timm_names() -> list[str]:
    available = timm.list_models()
    names = []
    for pattern in TIMM_PATTERNS:
        names.extend(n for n in fnmatch.filter(available, pattern) if n not in names)
    return names


def timm_widths() -> dict[str, int]:
    widths = {}
    for name in timm_names():
        model = _build(timm.create_model, name, pretrained=False)
        if model is None:
            continue
        classifier = model.get_classifier()
        width = getattr(classifier, "in_features", None) or classifier_width(model) or model.num_features
        widths[name] = int(width)
    return widths


def main() -> None:
    warnings.filterwarnings("ignore")
    by_width: dict[int, dict[str, list[str]]] = defaultdict(lambda: {"torchvision": [], "timm": []})
    for source, widths in (("torchvision", torchvision_widths()), ("timm", timm_widths())):
        for name, width in widths.items():
            by_width[width][source].append(name)
    table = {
        "generated_by": "scripts/gen_backbone_widths.py",
        "versions": {"torchvision": torchvision.__version__, "timm": timm.__version__},
        "widths": {str(w): by_width[w] for w in sorted(by_width)},
    }
    OUT.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(by_width)} widths")


if __name__ == "__main__":
    main()
