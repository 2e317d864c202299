"""Every family, end to end: a "pretrained" checkpoint (a weights=None model at its pretrained head
size, saved to a file) is loaded, adapted to K=3 and verified.

For each model: the heads have K (or K+1 where the family counts background) outputs, every
class-count attribute agrees, every tensor outside the replaced layers is bit-identical to the
checkpoint's, and ``adapt``'s own verification passes (check, one train step, one eval forward).

CI runs one model per head layout (``LEAN``, marked slow). ``HEADFIT_FULL_SWEEP=1`` runs every
torchvision builder with a class head as well.
"""

from __future__ import annotations

import os

import pytest
import torch

from headfit.adapt import adapt_with_report
from headfit.families import Family, family_for
from headfit.spec import build_model
from headfit.weights import load_weights

K = 3
LEAN = [
    "torchvision:squeezenet1_1",  # conv classifier
    "torchvision:googlenet",  # aux heads
    "torchvision:mobilenet_v3_small",  # Sequential classifier
    "torchvision:shufflenet_v2_x0_5",
    "torchvision:regnet_y_400mf",
    "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",  # counts background
    "torchvision:retinanet_resnet50_fpn_v2",  # per-anchor channels, GroupNorm tower
    "torchvision:fcos_resnet50_fpn",
    "torchvision:ssdlite320_mobilenet_v3_large",  # num_columns
    "torchvision:maskrcnn_resnet50_fpn",  # box and mask predictors
    "torchvision:keypointrcnn_resnet50_fpn",  # keypoints
    "torchvision:lraspp_mobilenet_v3_large",  # segmentation
    "torchvision:r3d_18",  # video
    "timm:resnet18",
    "timm:vit_tiny_patch16_224",
    "timm:deit_tiny_distilled_patch16_224",  # two heads
]
OPTIONS = {"torchvision:keypointrcnn_resnet50_fpn": {"num_keypoints": 5}}


def _full_zoo() -> list[str]:
    import torchvision

    models = torchvision.models
    names = [
        *models.list_models(module=models),
        *models.list_models(module=models.detection),
        *models.list_models(module=models.segmentation),
        *models.list_models(module=models.video),
    ]
    return [f"torchvision:{n}" for n in names if f"torchvision:{n}" not in LEAN]


FULL = _full_zoo() if os.environ.get("HEADFIT_FULL_SWEEP") else []


def _under(key: str, paths: list[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in paths)


@pytest.mark.slow
@pytest.mark.parametrize("spec", LEAN + FULL)
def test_adapt_a_pretrained_checkpoint_to_three_classes(spec, tmp_path):
    if spec.startswith("timm:"):
        pytest.importorskip("timm")
    torch.manual_seed(0)
    checkpoint = tmp_path / "pretrained.pth"
    torch.save(build_model(spec).state_dict(), checkpoint)
    model = build_model(spec)
    family = family_for(model)
    if type(family).adapt is Family.adapt:
        pytest.skip(f"the `{family.name}` family cannot adapt yet")
    assert load_weights(model, checkpoint).complete
    sizes = _transform_sizes(model)

    model, report = adapt_with_report(model, K, **OPTIONS.get(spec, {}))

    assert report.verification.ok, report.verification.failures
    expected = K + int(report.background)
    assert report.num_classes == K and report.head_outputs == expected
    assert family.num_classes(model) == K
    for head in family.heads(model):
        if "classifier" in head.kind or head.kind == "mask":  # regressors and keypoints count no classes
            assert head.outputs == expected, (head.path, head.outputs)
        for attribute, value in head.attributes.items():
            if attribute.endswith(("num_classes", "num_columns")):
                assert value in (K, expected), (attribute, value)
    pretrained = torch.load(checkpoint, weights_only=True)
    for key, tensor in model.state_dict().items():
        if not _under(key, report.replaced):
            assert torch.equal(tensor, pretrained[key]), key
    assert _transform_sizes(model) == sizes, "the smoke step puts a detector's transform back"


def _transform_sizes(model: torch.nn.Module) -> tuple | None:
    transform = getattr(model, "transform", None)
    return None if transform is None else (transform.min_size, transform.max_size)
