"""The generic family on hand-written models: classifier by structure, lint, adapt, inputs, sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from headfit.diagnosis import Diagnosis
from headfit.errors import UsageError
from headfit.families import family_for
from headfit.families.generic import GenericFamily, find_classifier

FAMILY = GenericFamily()


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def mlp(width_in: int = 20, hidden: int = 64, out: int = 5) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, out))


class TinyUNet(nn.Module):
    """Two poolings, two upsamplings, skip connections by concatenation."""

    def __init__(self, in_channels: int = 1, n_classes: int = 4) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.down1 = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU())
        self.down2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.dec2 = nn.Sequential(nn.Conv2d(32, 8, 3, padding=1), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.dec1 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
        self.outc = nn.Conv2d(8, n_classes, 1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        b = self.bottom(d2)
        u2 = self.dec2(torch.cat([self.up2(b), d2], 1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], 1))
        return self.outc(u1)


class HeadFirst(nn.Module):
    """The classifier is registered before the trunk: only its name says it is the head."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(16, 7)
        self.trunk = nn.Sequential(nn.Linear(8, 16), nn.ReLU())

    def forward(self, x):
        return self.classifier(self.trunk(x))


# -- recognition and heads --------------------------------------------------------------------------------


def test_generic_is_the_fallback_for_a_users_own_module():
    assert family_for(SmallCNN()).name == "generic"
    assert family_for(mlp()).name == "generic"


@pytest.mark.parametrize(
    ("model", "path", "outputs"),
    [(SmallCNN(), "fc", 10), (mlp(), "3", 5), (TinyUNet(), "outc", 4), (HeadFirst(), "classifier", 7)],
    ids=["cnn", "mlp", "unet", "head-first"],
)
def test_heads_find_the_layer_that_produces_the_classes(model, path, outputs):
    (head,) = FAMILY.heads(model)
    assert (head.path, head.outputs) == (path, outputs)
    assert FAMILY.num_classes(model) == outputs


def test_heads_report_the_class_count_attributes():
    (head,) = FAMILY.heads(SmallCNN(6))
    assert head.attributes == {"num_classes": 6}


def test_a_model_without_layers_has_no_head():
    assert FAMILY.heads(nn.Sequential(nn.ReLU())) == []
    assert FAMILY.num_classes(nn.ReLU()) is None


# -- lint ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [SmallCNN(), mlp(), TinyUNet(), HeadFirst()], ids=["cnn", "mlp", "unet", "head-first"]
)
def test_healthy_models_lint_clean(model):
    assert FAMILY.lint(model) == []


def test_sequential_whose_linear_widths_do_not_chain():
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(32, 5))
    (problem,) = FAMILY.lint(model)
    assert (problem.code, problem.module, problem.attribute) == ("HF233", "2", "in_features")
    assert "64" in problem.summary and "32" in problem.summary
    assert problem.fix == "model[2] = nn.Linear(64, 5)"
    with pytest.raises(RuntimeError, match="cannot be multiplied"):  # the mistake is real
        model(torch.randn(2, 20))


def test_sequential_conv_and_norm_widths_must_chain():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(8), nn.ReLU())
    (problem,) = FAMILY.lint(model)
    assert (problem.code, problem.module) == ("HF233", "1")
    assert problem.fix == "model[1] = nn.BatchNorm2d(16)"


def test_classifier_narrower_than_the_features_that_reach_it():
    model = SmallCNN()
    model.fc = nn.Linear(64, 10)
    problems = FAMILY.lint(model)
    assert [(p.code, p.module, p.attribute) for p in problems] == [("HF234", "fc", "in_features")]
    assert problems[0].fix == "model.fc = nn.Linear(32, 10)"
    with pytest.raises(RuntimeError, match=r"2x32 and 64x10"):
        model(torch.randn(2, 3, 16, 16))


def test_flatten_without_global_pool_makes_the_width_unknown():
    """Linear(16*4*4, 3) after Flatten of a 4x4 map is right; headfit must not call it wrong."""
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)
    )
    assert FAMILY.lint(model) == []
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_num_classes_attribute_that_disagrees_with_the_head():
    model = SmallCNN(10)
    model.fc = nn.Linear(32, 3)  # replaced by hand, attribute left at 10
    (problem,) = FAMILY.lint(model)
    assert (problem.code, problem.module, problem.attribute) == ("HF235", "", "num_classes")
    assert problem.fix == "model.num_classes = 3"
    assert "10" in problem.summary and "3" in problem.summary


# -- adapt --------------------------------------------------------------------------------------------------


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_adapt_replaces_only_the_classifier_and_updates_the_attribute():
    model = SmallCNN(10).double()
    before = _tensors(model)
    summary = FAMILY.adapt(model, 3)
    assert summary.replaced == ["fc"] and summary.attributes == {"num_classes": 3}
    assert (model.fc.in_features, model.fc.out_features) == (32, 3)
    assert model.fc.weight.dtype == torch.float64 and model.num_classes == 3
    after = model.state_dict()
    changed = {k for k in before if not k.startswith("fc.") and not torch.equal(before[k], after[k])}
    assert changed == set()
    assert model(torch.randn(2, 3, 16, 16, dtype=torch.float64)).shape == (2, 3)
    assert FAMILY.lint(model) == []


def test_adapt_keeps_the_bias_flag_and_conv_geometry():
    model = TinyUNet(n_classes=4)
    model.outc = nn.Conv2d(8, 4, 1, bias=False)
    FAMILY.adapt(model, 2)
    assert model.outc.bias is None and model.outc.kernel_size == (1, 1)
    assert model.n_classes == 2
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)


def test_adapt_keep_starts_rows_from_the_source_classes():
    model = mlp(out=5)
    old = model[3].weight.detach().clone(), model[3].bias.detach().clone()
    summary = FAMILY.adapt(model, 2, keep=[4, 1])
    assert summary.kept_rows == [4, 1]
    assert torch.equal(model[3].weight, old[0][[4, 1]]) and torch.equal(model[3].bias, old[1][[4, 1]])


def test_adapt_head_option_names_the_layer():
    model = HeadFirst()
    model.aux = nn.Linear(16, 7)  # registered last, but the user says which layer is the head
    summary = FAMILY.adapt(model, 2, head="classifier")
    assert summary.replaced == ["classifier"] and model.classifier.out_features == 2
    assert model.aux.out_features == 7


def test_adapt_head_option_may_name_a_container():
    model = nn.Sequential(nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 9)))
    assert FAMILY.adapt(model, 3, head="1").replaced == ["1.2"]


def test_adapt_head_that_does_not_exist_lists_candidates():
    with pytest.raises(UsageError) as info:
        FAMILY.adapt(SmallCNN(), 3, head="classifier")
    text = str(info.value)
    assert "`head='classifier'`" in text and "`fc` (Linear(32, 10))" in text and "features.0" in text
    assert "\n" not in text


def test_adapt_without_any_layer_says_so():
    with pytest.raises(UsageError, match="found no classifier layer"):
        FAMILY.adapt(nn.Sequential(nn.ReLU()), 3)


@pytest.mark.parametrize(("kwargs", "match"), [({"keep": [0]}, "keep"), ({"colour": 1}, "colour")])
def test_adapt_rejects_bad_options_in_one_paragraph(kwargs, match):
    with pytest.raises(UsageError, match=match):
        FAMILY.adapt(mlp(), 3, **kwargs)


def test_adapt_rejects_a_bad_class_count():
    with pytest.raises(UsageError):
        FAMILY.adapt(mlp(), 0)


def test_adapt_on_meta_keeps_the_device():
    with torch.device("meta"):
        model = SmallCNN()
    FAMILY.adapt(model, 3)
    assert model.fc.weight.is_meta


# -- inputs and sizes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (SmallCNN(), "2x3x224x224"),
        (mlp(width_in=20), "2x20"),
        (TinyUNet(in_channels=1), "2x1x224x224"),
        (nn.Sequential(nn.Conv1d(12, 8, 3)), "2x12x224"),
    ],
    ids=["rgb", "mlp", "gray", "conv1d"],
)
def test_default_inputs(model, text):
    (spec,) = FAMILY.default_inputs(model)
    assert str(spec) == text
    model(spec.make("cpu"))  # the model accepts it


def test_default_input_of_an_embedding_model_is_token_ids():
    (spec,) = FAMILY.default_inputs(nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 2)))
    assert spec.dtype == "int64"


def test_unet_needs_multiples_of_its_downsampling():
    rule = FAMILY.size_rule(TinyUNet())
    assert rule.multiple_of == 4
    TinyUNet()(torch.randn(1, 1, 12, 12))  # a multiple of 4 works
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        TinyUNet()(torch.randn(1, 1, 10, 10))


def test_cnn_minimum_size_and_mlp_has_no_rule():
    assert FAMILY.size_rule(SmallCNN()).minimum == 2
    assert FAMILY.size_rule(mlp()) is None


# -- live evidence ------------------------------------------------------------------------------------------------


def _diagnosis(message: str) -> Diagnosis:
    return Diagnosis("HF100", "x", "RuntimeError", message, "failed")


def test_explain_failure_reads_the_failing_module_and_names_the_culprit():
    model = SmallCNN()
    model.fc = nn.Linear(64, 10)
    try:
        model(torch.randn(2, 3, 8, 8))
    except RuntimeError as exc:
        evidence = FAMILY.explain_failure(model, "fc", _diagnosis(str(exc)))
    assert any("`fc` is `Linear(64, 10)`: it expects 64 features" in f for f in evidence.facts)
    (cause,) = evidence.causes
    assert cause.fix == "model.fc = nn.Linear(32, 10)" and cause.confidence >= 0.9


def test_find_classifier_with_head_pointing_nowhere():
    assert find_classifier(mlp(), head="nope") is None


class TwoHeads(nn.Module):
    """A box predictor: `cls_score` and `bbox_pred` read the same features in parallel."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(8, 256), nn.ReLU())
        self.bbox_pred = nn.Linear(256, 20)
        self.cls_score = nn.Linear(256, 5)

    def forward(self, x):
        x = self.trunk(x)
        return self.cls_score(x), self.bbox_pred(x)


def test_a_parallel_sibling_is_not_taken_for_the_layer_before_the_head():
    model = TwoHeads()
    assert [h.path for h in FAMILY.heads(model)] == ["cls_score"]
    assert FAMILY.lint(model) == []
    model(torch.randn(2, 8))


def test_modulelist_items_are_parallel():
    model = nn.Sequential(nn.Linear(4, 8), nn.ModuleList([nn.Linear(8, 3), nn.Linear(8, 3)]))
    assert FAMILY.lint(model) == []


@pytest.mark.slow
def test_torchvision_zoo_read_as_generic_models_lints_clean_and_adapts():
    """No false alarm on ~80 real architectures the structure reader has never seen by name."""
    import warnings

    import torchvision

    for name in torchvision.models.list_models(module=torchvision.models):
        if name.startswith("regnet"):
            continue  # the builder copies init values, which meta tensors do not have
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(name, weights=None)
        assert FAMILY.lint(model) == [], name
        FAMILY.adapt(model, 3)
        assert FAMILY.num_classes(model) == 3 and FAMILY.lint(model) == [], name
