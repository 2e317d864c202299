"""The timm family: heads from pretrained_cfg, lint (HF230-HF232), inputs, sizes, adapt, live evidence."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

timm = pytest.importorskip("timm")

from headfit.diagnosis import Diagnosis  # noqa: E402
from headfit.errors import UsageError  # noqa: E402
from headfit.families import family_for  # noqa: E402
from headfit.families.timm_models import TimmFamily, classifier_layers  # noqa: E402

FAMILY = TimmFamily()


def meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return timm.create_model(name, **kwargs)


def real(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs)


def _diagnosis(exc: BaseException) -> Diagnosis:
    return Diagnosis("HF100", "x", type(exc).__name__, str(exc), "failed")


# -- recognition ------------------------------------------------------------------------------------------


def test_recognises_timm_models_by_type_not_name():
    assert family_for(meta("resnet18")).name == "timm"
    assert not FAMILY.recognises(nn.Linear(2, 2))

    import torchvision

    with torch.device("meta"):
        assert not FAMILY.recognises(torchvision.models.resnet18())


def test_recognising_a_non_timm_model_does_not_import_timm():
    code = (
        "import sys, torch.nn as nn\n"
        "from headfit.families import family_for\n"
        "family_for(nn.Linear(2, 2))\n"
        "assert 'timm' not in sys.modules, 'timm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- heads ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        ("resnet50", ["fc"]),
        ("convnext_tiny", ["head.fc"]),
        ("vit_tiny_patch16_224", ["head"]),
        ("deit_tiny_distilled_patch16_224", ["head", "head_dist"]),
        ("levit_128", ["head.linear", "head_dist.linear"]),  # NormLinear wrappers: the Linear inside
        ("caformer_s18", ["head.fc.fc2"]),  # MlpHead: only fc2 depends on the classes
        ("dla34", ["fc"]),  # a 1x1 conv classifier
    ],
)
def test_heads_are_the_class_dependent_leaves(name, paths):
    model = meta(name)
    heads = FAMILY.heads(model)
    assert [h.path for h in heads] == paths
    assert all(h.outputs == 1000 for h in heads)
    assert heads[0].kind == "classifier" and heads[0].attributes == {"num_classes": 1000}
    assert FAMILY.num_classes(model) == 1000


def test_a_headless_model_has_no_classifier_layer():
    model = meta("resnet18", num_classes=0)
    assert FAMILY.heads(model) == [] and FAMILY.num_classes(model) == 0


def test_a_user_replaced_head_is_found_where_the_cfg_path_no_longer_exists():
    model = meta("convnext_tiny")
    model.head = nn.Sequential(nn.Linear(768, 256), nn.ReLU(), nn.Linear(256, 7))
    assert [(h.path, h.outputs) for h in FAMILY.heads(model)] == [("head.2", 7)]


# -- lint -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["resnet50", "vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "levit_128"]
)
def test_built_models_lint_clean(name):
    assert FAMILY.lint(meta(name)) == []


def test_linear_512_on_a_resnet50():
    model = meta("resnet50")
    model.fc = nn.Linear(512, 10)
    problems = {p.code: p for p in FAMILY.lint(model)}
    assert set(problems) == {"HF230", "HF231"}
    width = problems["HF230"]
    assert (width.module, width.attribute) == ("fc", "in_features")
    assert "512" in width.summary and "2048" in width.summary
    assert width.fix == "model.fc = nn.Linear(2048, 10)"
    assert problems["HF231"].fix == "model.num_classes = 10"


def test_the_width_mistake_is_real():
    model = real("test_resnet")
    model.fc = nn.Linear(model.num_features // 2, 10)
    (problem,) = [p for p in FAMILY.lint(model) if p.code == "HF230"]
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        model(torch.randn(1, 3, 64, 64))
    exec(problem.fix, {"model": model, "nn": nn})  # the fix is pasteable and works
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_head_replaced_without_num_classes():
    model = meta("vit_tiny_patch16_224")
    model.head = nn.Linear(192, 10)
    (problem,) = FAMILY.lint(model)
    assert (problem.code, problem.module, problem.attribute) == ("HF231", "", "num_classes")
    assert "1000" in problem.summary and "10" in problem.summary
    assert problem.fix == "model.num_classes = 10"


def test_distilled_deit_with_one_head_replaced():
    model = real("deit_tiny_distilled_patch16_224").eval()
    model.head = nn.Linear(192, 10)
    (problem,) = FAMILY.lint(model)
    assert (problem.code, problem.module) == ("HF232", "head")
    assert "`head` emits 10" in problem.summary and "`head_dist` emits 1000" in problem.summary
    assert problem.fix == "model.reset_classifier(10)"
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"\(10\) must match .* \(1000\)"):
        model(torch.randn(1, 3, 224, 224))


def test_multi_branch_heads_take_their_branch_width():
    assert FAMILY.lint(meta("crossvit_tiny_240")) == []


# -- inputs and sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "text"),
    [
        ("resnet18", {}, "2x3x224x224"),
        ("inception_v3", {}, "2x3x299x299"),
        ("vit_small_patch16_384", {}, "2x3x384x384"),
        ("vit_tiny_patch16_224", {"img_size": 384}, "2x3x384x384"),  # the patch embedding wins over the cfg
        ("resnet18", {"in_chans": 1}, "2x1x224x224"),
    ],
)
def test_default_inputs(name, kwargs, text):
    (spec,) = FAMILY.default_inputs(meta(name, **kwargs))
    assert str(spec) == text


def test_size_rules():
    assert FAMILY.size_rule(meta("vit_tiny_patch16_224")).exact == (224, 224)
    dynamic = FAMILY.size_rule(meta("vit_tiny_patch16_224", dynamic_img_size=True))
    assert dynamic.exact is None and dynamic.multiple_of == 16
    assert FAMILY.size_rule(meta("maxvit_tiny_tf_224")).exact == (224, 224)  # pretrained_cfg: fixed size
    cnn = FAMILY.size_rule(meta("resnet18"))
    assert cnn.exact is None and cnn.minimum == 32


def test_exact_size_is_what_the_model_enforces():
    model = real("test_vit", dynamic_img_size=False).eval()
    height, width = FAMILY.size_rule(model).exact
    with torch.no_grad():
        model(torch.randn(1, 3, height, width))
        with pytest.raises(AssertionError, match="doesn't match model"):
            model(torch.randn(1, 3, height + 16, width))


# -- adapt ------------------------------------------------------------------------------------------------


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed_outside(before: dict, model: nn.Module, replaced: list[str]) -> list[str]:
    after = model.state_dict()
    inside = tuple(f"{p}." for p in replaced)
    return [
        k
        for k in before
        if not k.startswith(inside) and (k not in after or not torch.equal(before[k], after[k]))
    ]


def test_adapt_resnet_keeps_everything_else_and_dtype():
    model = real("test_resnet").double()
    before = _tensors(model)
    old = model.fc.weight.detach().clone(), model.fc.bias.detach().clone()
    summary = FAMILY.adapt(model, 3, keep=[5, 0, 7])
    assert summary.replaced == ["fc"] and summary.attributes == {"num_classes": 3}
    assert model.fc.out_features == 3 and model.num_classes == 3 and model.fc.weight.dtype == torch.float64
    assert torch.equal(model.fc.weight, old[0][[5, 0, 7]]) and torch.equal(model.fc.bias, old[1][[5, 0, 7]])
    assert _changed_outside(before, model, summary.replaced) == []
    assert "3 outputs for your 3 classes (was 1000)" in summary.notes[0]
    assert model(torch.randn(1, 3, 64, 64, dtype=torch.float64)).shape == (1, 3)


def test_adapt_distilled_deit_re_heads_both_heads():
    model = meta("deit_tiny_distilled_patch16_224")
    summary = FAMILY.adapt(model, 4)
    assert summary.replaced == ["head", "head_dist"]
    assert model.head.out_features == model.head_dist.out_features == 4
    assert any("2 classifier heads" in n for n in summary.notes)


def test_adapt_keeps_repvit_distillation_head():
    model = meta("repvit_m1")
    assert FAMILY.adapt(model, 3).replaced == ["head.head.l", "head.head_dist.l"]
    assert model.head.distillation and model.head.num_classes == 3


def test_adapt_metaformer_mlp_head_keeps_the_hidden_layer():
    """timm's reset rebuilds the whole MlpHead; headfit restores fc1 and its norm."""
    from timm.models.metaformer import MetaFormer

    torch.manual_seed(0)
    model = MetaFormer(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), use_mlp_head=True)
    before = _tensors(model)
    summary = FAMILY.adapt(model, 3)
    assert summary.replaced == ["head.fc.fc2"] and model.head.fc.fc2.out_features == 3
    assert _changed_outside(before, model, summary.replaced) == []


def test_adapt_falls_back_when_reset_classifier_does_not_cover_the_head():
    model = meta("convnext_tiny")
    model.head = nn.Linear(768, 10, device="meta")  # ConvNeXt's reset_classifier expects its ClassifierHead
    summary = FAMILY.adapt(model, 3)
    assert summary.replaced == ["head"] and model.head.out_features == 3 and model.num_classes == 3
    assert "did not cover" in summary.notes[0]
    assert model.head.weight.is_meta


def test_adapt_from_a_headless_model():
    model = meta("resnet18", num_classes=0)
    assert FAMILY.adapt(model, 5).replaced == ["fc"] and model.fc.out_features == 5
    with pytest.raises(UsageError, match="no"):
        FAMILY.adapt(meta("resnet18", num_classes=0), 2, keep=[0, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"keep": [1]}, "keep"), ({"keep": [0, 1000]}, "1000"), ({"head": "fc"}, "head")],
)
def test_adapt_rejects_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        FAMILY.adapt(meta("resnet18"), 2, **kwargs)


def test_adapt_through_the_public_api_verifies():
    from headfit.adapt import adapt

    model = real("test_vit")
    assert adapt(model, 3) is model
    assert model.num_classes == 3


# -- live evidence --------------------------------------------------------------------------------------


def test_explain_failure_on_a_wrong_input_size():
    model = real("test_vit", dynamic_img_size=False).eval()
    height, width = FAMILY.size_rule(model).exact
    with pytest.raises(AssertionError) as info, torch.no_grad():
        model(torch.randn(1, 3, height * 2, width))
    evidence = FAMILY.explain_failure(model, "patch_embed", _diagnosis(info.value))
    (cause,) = evidence.causes
    assert (cause.module, cause.attribute) == ("patch_embed", "img_size")
    assert f"is {height * 2}" in cause.summary and "`model.set_input_size" in cause.fix
    assert any(f"exactly {height}x{width}" in f for f in evidence.facts)


def test_explain_failure_names_the_distilled_head():
    model = real("deit_tiny_distilled_patch16_224").eval()
    model.head_dist = nn.Linear(192, 2)
    with pytest.raises(RuntimeError) as info, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    evidence = FAMILY.explain_failure(model, "", _diagnosis(info.value))
    assert "`head_dist` is `Linear(192, 2)`" in evidence.facts
    assert evidence.causes[0].module == "head_dist" and evidence.causes[0].fix == "model.reset_classifier(2)"
    assert evidence.causes[0].confidence >= 0.9


# -- the zoo ----------------------------------------------------------------------------------------------

ZOO = [
    "resnet18", "resnet50", "resnext50_32x4d", "efficientnet_b0", "convnext_tiny", "vit_tiny_patch16_224",
    "vit_small_patch16_384", "swin_tiny_patch4_window7_224", "deit_tiny_patch16_224",
    "deit_tiny_distilled_patch16_224", "regnety_002", "mobilenetv3_small_100", "mobilenetv4_conv_small",
    "eva02_tiny_patch14_224", "maxvit_tiny_tf_224", "levit_128", "poolformer_s12", "densenet121",
    "inception_v3", "xception41", "cait_xxs24_224", "coat_tiny", "pvt_v2_b0", "efficientformer_l1",
    "ghostnet_100", "hrnet_w18_small", "mixer_b16_224", "beit_base_patch16_224", "twins_svt_small",
    "fastvit_t8", "repvit_m1", "edgenext_xx_small", "tiny_vit_5m_224", "cspresnet50", "dla34", "vgg11",
    "crossvit_tiny_240", "volo_d1_224", "caformer_s18", "efficientvit_b0", "dpn68", "hiera_tiny_224",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_on_meta(name):
    model = meta(name)
    assert family_for(model).name == "timm", name
    assert FAMILY.lint(model) == [], name
    heads = FAMILY.heads(model)
    assert all(h.outputs == model.num_classes for h in heads)
    assert FAMILY.default_inputs(model)[0].shapes[0][0] == 2
    summary = FAMILY.adapt(model, 3)
    assert summary.replaced and len(summary.replaced) >= len(heads)
    assert [h.outputs for h in FAMILY.heads(model)] == [3] * len(summary.replaced)
    assert model.num_classes == 3 and FAMILY.lint(model) == []
    assert all(layer.weight.is_meta for _, layer in classifier_layers(model))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_convnext", "test_vit"])
def test_small_models_forward_after_adapt(name):
    model = real(name).eval()
    FAMILY.adapt(model, 3)
    (spec,) = FAMILY.default_inputs(model)
    with torch.no_grad():
        assert model(spec.make("cpu")[:1]).shape == (1, 3)
