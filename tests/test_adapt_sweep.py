"""Every family, end to end: a "pretrained" checkpoint (a weights=None model at its pretrained head
size, saved to a file) is loaded, adapted to K=3 and verified.

For each model: the heads have K (or K+1 where the family counts background) outputs, every
class-count attribute agrees, every tensor outside the replaced layers is bit-identical to the
checkpoint's, and ``adapt``'s own verification passes (check, one train step, one eval forward).

CI runs one model per head layout (``LEAN``, marked slow). ``HEADFIT_FULL_SWEEP=1`` runs every
torchvision builder with a class head (quantizable ones included) and ``TIMM_FULL`` as well.
"""

from __future__ import annotations

import os

import pytest
import torch

from headfit.adapt import adapt_with_report
from headfit.families import family_for
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
# Peak memory is ~6 float32 copies of the weights (the model, its checkpoint file read back twice,
# adapt's snapshot, gradients): 400M parameters is ~10 GB. Only vit_h_14 (632M) and regnet_y_128gf
# (645M) are bigger; raise the limit on a machine with 32 GB to spare.
MAX_PARAMS = int(os.environ.get("HEADFIT_SWEEP_MAX_PARAMS", 400_000_000))
# timm heads of every kind, smallest variant of each (``HEADFIT_FULL_SWEEP=1`` only)
TIMM_FULL = [
    # CNNs: Linear after global pooling, conv heads, pre-logits MLPs
    "timm:efficientnet_b0",
    "timm:mobilenetv3_small_050",  # conv_head before the classifier
    "timm:mobilenetv4_conv_small",
    "timm:convnext_atto",  # norm + fc in `head`
    "timm:regnetx_002",
    "timm:densenet121",
    "timm:ghostnetv2_100",
    "timm:mixnet_s",
    "timm:rexnet_100",
    "timm:dla34",  # 1x1 conv classifier
    "timm:hrnet_w18_small",
    "timm:dpn68",  # conv classifier
    "timm:resnest14d",
    "timm:repvgg_a0",
    "timm:inception_v3",  # 299x299
    "timm:vgg11",  # ConvMlp pre-logits
    "timm:nf_resnet26",
    "timm:lcnet_050",
    "timm:hgnetv2_b0",
    "timm:tinynet_e",  # 106x106
    "timm:cspresnet50",
    "timm:selecsls42b",
    "timm:ese_vovnet19b_dw",
    "timm:tresnet_m",  # inplace-ABN, space-to-depth stem
    "timm:mobileone_s0",
    "timm:starnet_s1",
    # transformers and hybrids: fixed sizes, token heads, distillation heads
    "timm:levit_128s",  # head + head_dist, BatchNorm-Linear
    "timm:levit_conv_128s",
    "timm:crossvit_tiny_240",  # a list of two heads
    "timm:pit_ti_distilled_224",
    "timm:cait_xxs24_224",
    "timm:xcit_nano_12_p16_224",
    "timm:volo_d1_224",  # aux_head on tokens
    "timm:eva02_tiny_patch14_224",
    "timm:deit3_small_patch16_224",
    "timm:convit_tiny",
    "timm:swin_tiny_patch4_window7_224",
    "timm:maxvit_nano_rw_256",
    "timm:coatnet_nano_rw_224",
    "timm:tiny_vit_5m_224",
    "timm:hiera_tiny_224",
    "timm:mvitv2_tiny",
    "timm:pvt_v2_b0",
    "timm:twins_pcpvt_small",
    "timm:coat_lite_tiny",
    "timm:davit_tiny",
    "timm:gcvit_xxtiny",
    "timm:efficientformer_l1",  # head + head_dist
    "timm:efficientformerv2_s0",
    "timm:efficientvit_b0",
    "timm:fastvit_t8",
    "timm:mobilevit_xxs",
    "timm:edgenext_xx_small",
    "timm:repvit_m0_9",  # distilled BN-Linear heads
    "timm:poolformer_s12",
    "timm:inception_next_tiny",
    "timm:mambaout_femto",
    # MLPs and recurrent mixers
    "timm:mixer_s16_224",
    "timm:resmlp_12_224",
    "timm:gmlp_ti16_224",
    "timm:sequencer2d_s",  # LSTMs
]


def _full_zoo() -> list[str]:
    import torchvision

    models = torchvision.models
    names = [
        *models.list_models(module=models),
        *models.list_models(module=models.detection),
        *models.list_models(module=models.segmentation),
        *models.list_models(module=models.video),
    ]
    names += models.list_models(module=models.quantization)  # quantize=False: the float, quantizable model
    specs = [f"torchvision:{n}" for n in names] + TIMM_FULL
    return [s for s in specs if s not in LEAN]


FULL = _full_zoo() if os.environ.get("HEADFIT_FULL_SWEEP") else []


def _under(key: str, paths: list[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in paths)


@pytest.mark.slow
@pytest.mark.parametrize("spec", LEAN + FULL)
def test_adapt_a_pretrained_checkpoint_to_three_classes(spec, tmp_path):
    if spec.startswith("timm:"):
        pytest.importorskip("timm")
    params = sum(p.numel() for p in build_model(spec, device="meta").parameters())
    if params > MAX_PARAMS:
        pytest.skip(f"{params / 1e6:.0f}M parameters > HEADFIT_SWEEP_MAX_PARAMS={MAX_PARAMS:,}")
    torch.manual_seed(0)
    checkpoint = tmp_path / "pretrained.pth"
    torch.save(build_model(spec).state_dict(), checkpoint)
    model = build_model(spec)
    family = family_for(model)
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
