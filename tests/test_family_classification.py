"""torchvision image/video/quantizable classifiers: recognise, lint (one injected mistake per invariant),
adapt every builder on meta, and a real CPU adapt for the awkward heads."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch
import torchvision.models as M
from torch import nn

from headfit.catalogue import code_info
from headfit.diagnosis import Diagnosis
from headfit.errors import UsageError
from headfit.families import family_for
from headfit.families.torchvision_classification import TorchvisionClassification

FAMILY = "torchvision-classification"
MODULES = {"classification": M, "video": M.video, "quantization": M.quantization}
ZOO = [(kind, name) for kind, module in MODULES.items() for name in M.list_models(module=module)]
# one builder per architecture, kept out of the slow sweep
QUICK = [
    "resnet18", "regnet_x_400mf", "shufflenet_v2_x0_5", "googlenet", "inception_v3", "alexnet", "vgg11",
    "densenet121", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "mnasnet0_5", "convnext_tiny",
    "vit_b_32", "swin_t", "maxvit_t", "squeezenet1_0", "r3d_18", "mvit_v2_s", "s3d", "swin3d_t",
    "quantized_resnet18", "quantized_googlenet",
]  # fmt: skip


@contextlib.contextmanager
def _parameters_on_meta():
    """Like ``torch.device("meta")`` for parameters only: RegNet computes its widths with real tensors."""
    register = nn.Module.register_parameter

    def on_meta(self, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(self, name, param)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def build(name: str, device: str = "meta", **kwargs) -> nn.Module:
    kwargs.setdefault("weights", None)
    if name.startswith("quantized_"):
        kwargs.setdefault("quantize", False)
    if name in ("googlenet", "inception_v3", "quantized_googlenet", "quantized_inception_v3"):
        kwargs.setdefault("init_weights", False)
    context = _parameters_on_meta() if device == "meta" and "regnet" in name else torch.device(device)
    with warnings.catch_warnings(), context:
        warnings.simplefilter("ignore")
        return M.get_model(name, **kwargs)


def lint(model: nn.Module):
    return family_for(model).lint(model)


def the_problem(model: nn.Module, code: str):
    problems = lint(model)
    assert [p.code for p in problems] == [code], [p.summary for p in problems]
    return problems[0]


def _adapted_meta(name: str) -> None:
    model = build(name)
    family = family_for(model)
    assert family.name == FAMILY
    before = family.heads(model)
    assert lint(model) == [], [p.summary for p in lint(model)]
    summary = family.adapt(model, 3)
    assert summary.replaced == [h.path for h in before]
    heads = family.heads(model)
    assert [h.outputs for h in heads] == [3] * len(heads)
    for head in heads:
        layer = model.get_submodule(head.path)
        assert layer.weight.shape[0] == 3 and layer.weight.is_meta
        assert all(value == 3 for value in head.attributes.values())
    assert family.num_classes(model) == 3
    assert lint(model) == []


@pytest.mark.parametrize("name", QUICK)
def test_adapt_one_builder_per_architecture_on_meta(name):
    _adapted_meta(name)


@pytest.mark.slow
@pytest.mark.parametrize("kind,name", [z for z in ZOO if z[1] not in QUICK])
def test_adapt_every_builder_on_meta(kind, name):
    _adapted_meta(name)


def test_every_zoo_module_is_covered():
    assert len(ZOO) >= 100
    assert {kind for kind, _ in ZOO} == set(MODULES)


@pytest.mark.parametrize("name", ["s3d", "swin3d_t", "mvit_v2_s", "r3d_18", "inception_v3", "vit_b_32"])
def test_default_inputs_run_on_meta(name):
    model = build(name).eval()
    inputs = [spec.make("meta") for spec in family_for(model).default_inputs(model)]
    assert model(*inputs).shape[-1] == family_for(model).num_classes(model)


# --- lint: one injected mistake per invariant -----------------------------------------------------------


def test_resnet50_with_resnet18_width_fc():
    model = build("resnet50")
    model.fc = nn.Linear(512, 10)
    problem = the_problem(model, "HF220")
    assert (problem.module, problem.attribute) == ("fc", "in_features")
    assert "512" in problem.summary and "2048" in problem.summary
    assert problem.fix == "model.fc = nn.Linear(2048, 10)"


def test_efficientnet_classifier_replaced_by_a_wide_linear():
    model = build("efficientnet_b0")
    model.classifier = nn.Linear(4096, 10)
    problem = the_problem(model, "HF220")
    assert (problem.module, problem.fix) == ("classifier", "model.classifier = nn.Linear(1280, 10)")


def test_vgg_inner_linears_that_do_not_chain():
    model = build("vgg11")
    model.classifier[3] = nn.Linear(2048, 4096)
    problem = the_problem(model, "HF220")
    assert (problem.module, problem.attribute) == ("classifier.3", "in_features")
    assert problem.fix == "model.classifier[3] = nn.Linear(4096, 4096)"


def test_inception_feature_width_is_the_sum_of_the_branches():
    model = build("inception_v3")
    model.fc = nn.Linear(768, 1000)
    assert the_problem(model, "HF220").fix == "model.fc = nn.Linear(2048, 1000)"


def test_maxvit_fix_keeps_bias_false():
    model = build("maxvit_t")
    model.classifier[5] = nn.Linear(256, 10, bias=False)
    assert the_problem(model, "HF220").fix == "model.classifier[5] = nn.Linear(512, 10, bias=False)"


@pytest.mark.parametrize(
    "name,replace",
    [
        ("squeezenet1_0", lambda m: m.classifier.__setitem__(1, nn.Conv2d(512, 10, kernel_size=1))),
        ("vit_b_32", lambda m: setattr(m.heads, "head", nn.Linear(768, 10))),
        ("swin_t", lambda m: setattr(m, "head", nn.Linear(768, 10))),
        ("mnasnet0_5", lambda m: m.classifier.__setitem__(1, nn.Linear(1280, 10))),
        ("swin3d_t", lambda m: setattr(m, "head", nn.Linear(768, 10))),
    ],
)
def test_num_classes_attribute_left_behind(name, replace):
    model = build(name)
    replace(model)
    problem = the_problem(model, "HF221")
    assert (problem.module, problem.attribute, problem.fix) == ("", "num_classes", "model.num_classes = 10")


def test_squeezenet_conv_classifier_width():
    model = build("squeezenet1_1")
    model.classifier[1] = nn.Conv2d(256, 1000, kernel_size=1)
    problem = the_problem(model, "HF220")
    assert (problem.attribute, problem.fix) == (
        "in_channels",
        "model.classifier[1] = nn.Conv2d(512, 1000, kernel_size=1)",
    )


def test_googlenet_aux_heads_left_at_1000():
    model = build("googlenet", aux_logits=True)
    model.fc = nn.Linear(1024, 5)
    problems = lint(model)
    assert [(p.code, p.module) for p in problems] == [("HF222", "aux1.fc2"), ("HF222", "aux2.fc2")]
    assert problems[0].fix == "model.aux1.fc2 = nn.Linear(1024, 5)"


def test_inception_aux_head_left_at_1000():
    model = build("inception_v3")
    model.fc = nn.Linear(2048, 5)
    problem = the_problem(model, "HF222")
    assert (problem.module, problem.fix) == ("AuxLogits.fc", "model.AuxLogits.fc = nn.Linear(768, 5)")


def test_codes_are_documented():
    for code in ("HF220", "HF221", "HF222"):
        info = code_info(code)
        assert info is not None and info.title and "## How to fix it" in info.text


# --- sizes and inputs ----------------------------------------------------------------------------------


def test_size_rules():
    family = TorchvisionClassification()
    assert family.size_rule(build("vit_b_32")).exact == (224, 224)
    assert family.size_rule(build("vit_b_32", image_size=384)).exact == (384, 384)
    assert family.size_rule(build("mvit_v2_s")).exact == (224, 224)
    assert family.size_rule(build("inception_v3")).minimum == 75
    assert str(family.default_inputs(build("inception_v3"))[0]) == "2x3x299x299"
    assert str(family.default_inputs(build("r2plus1d_18"))[0]) == "1x3x16x112x112"


# --- adapt on real tensors -----------------------------------------------------------------------------


def _adapt_real(name: str, k: int = 3, keep=None, **kwargs):
    torch.manual_seed(0)
    model = build(name, device="cpu", **kwargs)
    before = {key: t.clone() for key, t in model.state_dict().items()}
    family = family_for(model)
    summary = family.adapt(model, k, keep=keep)
    after = model.state_dict()
    changed = {key for key in after if key not in before or not torch.equal(after[key], before[key])}
    assert all(any(key.startswith(p + ".") for p in summary.replaced) for key in changed), changed
    assert set(before) == set(after)
    return model, before, summary


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_0", "mobilenet_v3_small"])
def test_real_adapt_changes_only_the_head_and_runs(name):
    model, _, summary = _adapt_real(name)
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 3)
    assert summary.head_outputs == 3


def test_squeezenet_adapt_updates_num_classes_and_uses_its_init():
    model, _, summary = _adapt_real("squeezenet1_0")
    assert model.num_classes == 3 and summary.attributes == {"num_classes": 3}
    assert torch.count_nonzero(model.classifier[1].bias) == 0


@pytest.mark.slow  # 19 s here (pytest --durations, -n 2)
def test_googlenet_adapt_reheads_aux_and_trains():
    model, _, summary = _adapt_real("googlenet", aux_logits=True)
    assert summary.replaced == ["fc", "aux1.fc2", "aux2.fc2"]
    family = family_for(model)
    batch = family.smoke_batch(model, 3)
    output = model.train()(*batch.args)
    assert type(output).__name__ == "GoogLeNetOutputs"
    loss = family.smoke_loss(model, output, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.aux1.fc2.weight.grad is not None
    assert family.output_classes(model, output) == 3


def test_inception_adapt_keeps_aux_stddev_and_runs():
    model, _, summary = _adapt_real("inception_v3")
    assert summary.replaced == ["fc", "AuxLogits.fc"]
    assert model.AuxLogits.fc.stddev == 0.001
    assert model.AuxLogits.fc.weight.std() < 0.01 < model.fc.weight.std()
    assert model.eval()(torch.rand(1, 3, 75, 75)).shape == (1, 3)


def test_maxvit_adapt_keeps_bias_false():
    model, _, _ = _adapt_real("maxvit_t")
    assert model.classifier[5].bias is None and model.classifier[5].out_features == 3


def test_vit_head_starts_at_zero_and_metadata_follows():
    model, _, _ = _adapt_real("vit_b_32")
    assert model.num_classes == 3 and torch.count_nonzero(model.heads.head.weight) == 0


def test_keep_copies_the_source_rows():
    model, before, summary = _adapt_real("resnet18", keep=[7, 0, 999])
    assert torch.equal(model.fc.weight, before["fc.weight"][[7, 0, 999]])
    assert torch.equal(model.fc.bias, before["fc.bias"][[7, 0, 999]])
    assert summary.kept_rows == [7, 0, 999]


@pytest.mark.parametrize(
    "keep,options,words",
    [
        ([1, 2], {}, "lists 2 source classes"),
        ([0, 1, 1000], {}, "outside the source head"),
        (None, {"foo": 1}, "`foo`"),
    ],
)
def test_bad_adapt_arguments_are_usage_errors(keep, options, words):
    model = build("resnet18")
    with pytest.raises(UsageError, match=words):
        family_for(model).adapt(model, 3, keep=keep, **options)


def test_converted_quantized_model_asks_for_the_float_one():
    model = build("quantized_resnet18", device="cpu", quantize=True)
    with pytest.raises(UsageError, match="quantize=False"):
        family_for(model).adapt(model, 3)


def test_adapt_keeps_dtype():
    model = build("resnet18", device="cpu").to(torch.float64)
    family_for(model).adapt(model, 3)
    assert model.fc.weight.dtype == torch.float64


# --- explain_failure: the live model names the culprit --------------------------------------------------


def test_explain_failure_from_a_real_forward():
    model = build("resnet18", device="cpu").eval()
    model.fc = nn.Linear(2048, 10)
    with pytest.raises(RuntimeError) as error:
        model(torch.rand(1, 3, 64, 64))
    message = str(error.value)
    assert "mat1 and mat2 shapes cannot be multiplied (1x512 and 2048x10)" in message
    diagnosis = Diagnosis(code=None, category=None, error_type="RuntimeError", message=message, summary="")
    evidence = family_for(model).explain_failure(model, "fc", diagnosis)
    assert "`layer4` produces 512 features per sample" in evidence.facts
    (cause,) = evidence.causes
    assert (cause.module, cause.attribute, cause.fix) == (
        "fc",
        "in_features",
        "model.fc = nn.Linear(512, 10)",
    )
    assert cause.confidence >= 0.9
