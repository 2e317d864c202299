"""``check``: lint + trace problems, the seed mistake, input forms, size problems, and a model left
exactly as it was, for a passing and a failing check."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import headfit
from headfit.check import CheckReport, check
from headfit.errors import UsageError
from headfit.inputs import InputSpec, float_dtype, positional_inputs
from headfit.spec import build_model


def _meta(name: str) -> nn.Module:
    return build_model(f"torchvision:{name}", device="meta")


def _seed_model() -> nn.Module:
    """The seed's mistake: FCOS re-headed for 2 classes without updating `num_classes`."""
    model = _meta("fcos_resnet50_fpn")
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, 1, 1, device="meta")
    return model


def test_seed_fcos_is_pinpointed():
    report = check(_seed_model(), "[3x1333x762]x2")
    assert not report.ok
    trace_problem = next(p for p in report.problems if p.code == "HF240")
    assert (trace_problem.module, trace_problem.attribute) == ("head.classification_head", "num_classes")
    assert trace_problem.fix == "model.head.classification_head.num_classes = 2"
    assert any("[2, 256, 168, 96]" in f for f in trace_problem.facts)
    assert report.trace.stopped_at == "head.classification_head" and not report.trace.completed
    assert report.diagnosis is not None and report.diagnosis.location.module == "head.classification_head"
    top = report.diagnosis.causes[0]
    assert (top.module, top.attribute) == ("head.classification_head", "num_classes")
    lint = [p for p in report.problems if p.code != "HF240"]
    assert any(p.module.startswith("head.classification_head") and p.attribute == "num_classes" for p in lint)


def test_seed_fixed_passes():
    model = _seed_model()
    model.head.classification_head.num_classes = 2
    report = check(model, "[3x1333x762]x2")
    assert report.ok and report.trace.completed, report.problems


@pytest.mark.parametrize("name", ["fcos_resnet50_fpn", "retinanet_resnet50_fpn", "keypointrcnn_resnet50_fpn"])
def test_healthy_detectors_pass_with_defaults(name):
    report = check(_meta(name))
    assert report.ok, [p.summary for p in report.problems]
    assert report.trace.completed and report.inputs == ["[3x800x1333,3x800x1333]"]


def test_half_adapted_mask_rcnn_is_flagged_without_a_failing_trace():
    model = _meta("maskrcnn_resnet50_fpn")
    predictor = torchvision.models.detection.faster_rcnn.FastRCNNPredictor
    with torch.device("meta"):
        model.roi_heads.box_predictor = predictor(1024, 4)
    report = check(model)
    assert not report.ok and report.trace.completed  # it runs silently: only the lint sees it
    assert any(p.module.startswith("roi_heads.mask_predictor") for p in report.problems)


def test_trace_problem_points_at_the_culprit_and_says_where_it_raised():
    model = _meta("ssdlite320_mobilenet_v3_large")
    head = model.head.classification_head.module_list[0]
    with torch.device("meta"):
        head[1] = nn.Conv2d(head[1].in_channels, 6 * 3, 1)  # 6 anchors x 3 classes; num_columns left at 91
    report = check(model)
    problem = next(p for p in report.problems if p.code == "HF240")
    assert report.trace.stopped_at == "head.classification_head"
    assert problem.summary == "the shape trace raised in `head.classification_head`"
    assert problem.module == "head.classification_head.module_list.0.1"


def test_linear_512_on_resnet50():
    model = _meta("resnet50")
    model.fc = nn.Linear(512, 10, device="meta")
    report = check(model, "2x3x224x224")
    assert not report.ok
    assert {p.module for p in report.problems} == {"fc"}
    trace_problem = next(p for p in report.problems if p.code == "HF240")
    assert trace_problem.fix == "model.fc = nn.Linear(2048, 10)"


def test_a_sequential_child_is_named_as_python_writes_it_and_headfit_is_never_your_code():
    """An editable install puts headfit's tracer outside site-packages: its frame must not be called the
    user's innermost call, and the Linear at index 2 reads ``model[2]``, not a bare ``2``."""
    from headfit.render import diagnosis_text

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(100, 10))
    report = check(model, "1x3x32x32")
    diagnosis = report.diagnosis
    shown = diagnosis_text(diagnosis).plain
    assert not any("trace.py" in fact for fact in diagnosis.facts), diagnosis.facts
    assert "module `model[2]` (Linear)" in " ".join(shown.split())
    assert "`model[2]`.`in_features`" in shown
    assert "`2`" not in shown


def test_wrong_vit_size_is_a_size_problem_with_the_accepted_size():
    report = check(_meta("vit_b_16"), "2x3x256x256")
    (problem,) = report.problems
    assert problem.code == "HF241"
    assert "exactly 224x224" in " ".join(problem.facts)
    assert "size=(224, 224)" in problem.fix
    assert report.sizes is not None and not report.sizes.accepts(256, 256)
    assert check(_meta("vit_b_16"), "2x3x224x224").ok


class SkipNet(nn.Module):
    """One 2x downsampling and a skip connection: odd sizes do not line up."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 3, 2, stride=2)

    def forward(self, x):
        return self.up(self.down(x)) + x


@pytest.mark.parametrize(
    "model, spec, accepted, fix",
    [
        (SkipNet(), "1x3x63x64", "H and W multiples of 2, >= 2", "size=(64, 64)"),
        (_meta("alexnet"), "2x3x32x32", "any size >= 63", "size=(63, 63)"),
    ],
    ids=["not-a-multiple", "too-small"],
)
def test_size_problems_carry_the_sizes_answer(model, spec, accepted, fix):
    (problem,) = check(model, spec).problems
    assert problem.code == "HF241" and f"accepted sizes: {accepted}" in problem.facts
    assert fix in problem.fix


def test_input_forms_give_the_same_trace():
    model = _meta("resnet18")
    by_spec = check(model, "2x3x64x64")
    by_tensor = check(model, torch.zeros(2, 3, 64, 64))
    by_list = check(model, ["2x3x64x64"])
    by_spec_object = check(model, InputSpec.batch(2, 3, 64, 64))
    shapes = [[c.output_shapes for c in r.trace.calls] for r in (by_spec, by_tensor, by_list, by_spec_object)]
    assert shapes[0] == shapes[1] == shapes[2] == shapes[3]
    assert by_tensor.inputs == ["2x3x64x64"]


def test_list_of_image_tensors_is_one_detection_input():
    report = check(
        _meta("ssdlite320_mobilenet_v3_large"), [torch.zeros(3, 300, 400), torch.zeros(3, 200, 250)]
    )
    assert report.ok and report.inputs == ["[3x300x400,3x200x250]"]


def test_several_positional_inputs():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    assert check(Pair(), ("2x3", "2x4")).ok
    report = check(Pair(), ("2x3", "2x6"))
    assert not report.ok and report.problems[-1].module == "b"


def test_spec_inputs_follow_a_half_precision_model():
    model = _meta("resnet18").half()
    assert check(model, "2x3x64x64").ok
    (image,), _ = positional_inputs("2x3x64x64", float_dtype=float_dtype(model))
    (images,), _ = positional_inputs("[3x8x8]x2", float_dtype=torch.float16)
    (tokens,), _ = positional_inputs(InputSpec.batch(2, 7, dtype="int64"), float_dtype=torch.float16)
    assert image.dtype == images[1].dtype == torch.float16 and tokens.dtype == torch.int64
    (user,), _ = positional_inputs(torch.zeros(2, 3), float_dtype=torch.float16)
    assert user.dtype == torch.float32  # the user's own tensor is traced as it is


def test_a_family_that_fails_becomes_a_note_not_a_traceback(monkeypatch):
    from headfit.families import family_for

    model = nn.Sequential(nn.Linear(3, 4))
    family = family_for(model)

    def broken_lint(model):
        raise AttributeError("'Sequential' object has no attribute 'fc'")

    monkeypatch.setattr(family, "lint", broken_lint)
    report = check(model, "2x3")
    assert report.ok and report.trace.completed
    assert report.notes == [
        f"headfit's {family.name} family failed in `lint` (AttributeError: 'Sequential' object has no "
        "attribute 'fc'); that part of the check was skipped. Please report it."
    ]
    assert report.to_dict()["notes"] == report.notes


def test_bad_inputs_are_usage_errors():
    with pytest.raises(UsageError, match="input spec"):
        check(nn.Linear(3, 4), "2xthree")
    with pytest.raises(UsageError, match="type int"):
        check(nn.Linear(3, 4), 7)


def test_document_follows_the_contract_and_depth_limits_modules():
    doc = check(_seed_model(), "[3x1333x762]x2", depth=1, name="seed").to_dict()
    assert {"model", "ok", "problems", "trace", "diagnosis"} <= set(doc)
    assert doc["model"] == "seed" and doc["ok"] is False
    assert {"completed", "stopped_at", "reason", "modules"} <= set(doc["trace"])
    assert {m["module"] for m in doc["trace"]["modules"]} == {"", "transform", "backbone", "head"}
    assert {"module", "type", "input_shapes", "output_shapes", "params"} == set(doc["trace"]["modules"][1])
    assert doc["diagnosis"]["location"]["module"] == "head.classification_head"
    assert all({"code", "module", "attribute", "summary", "fix"} <= set(p) for p in doc["problems"])


def test_public_api_is_check():
    report = headfit.check(nn.Sequential(nn.Linear(3, 4)), "2x3")
    assert isinstance(report, CheckReport) and report.ok
    assert isinstance(headfit.check(nn.Linear(3, 4), "2x3"), CheckReport)  # still callable afterwards


# -- the model is never changed -------------------------------------------------------------------


class Hooked(nn.Module):
    """BatchNorm in train mode, a frozen layer, an eval-mode submodule, and user hooks."""

    def __init__(self, in_features: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.frozen = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(in_features, 4)

    def forward(self, x):
        return self.fc(self.frozen(self.bn(self.conv(x))).mean((2, 3)))


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "objects": {k: id(v) for k, v in model.state_dict(keep_vars=True).items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "devices": {k: str(v.device) for k, v in model.state_dict().items()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {
            k: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
            for k, m in model.named_modules()
        },
    }


def _assert_same(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for part in ("objects", "requires_grad", "devices", "training", "hooks"):
        assert before[part] == after[part], part


def _prepared(model: nn.Module) -> tuple[nn.Module, list]:
    seen: list = []
    model.train()
    model.frozen.eval()
    model.frozen.weight.requires_grad_(False)
    model.bn.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.conv.register_forward_pre_hook(lambda m, i: seen.append(i[0].shape))
    with torch.no_grad():
        model.bn.running_mean.uniform_()
        model.bn.num_batches_tracked.fill_(7)
    return model, seen


@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing"])
def test_check_leaves_the_model_exactly_as_it_was(passing):
    model, seen = _prepared(Hooked(8 if passing else 6))
    before = _snapshot(model)
    report = check(model, "2x3x16x16")
    assert report.ok is passing
    if not passing:
        assert report.trace.stopped_at == "fc"
    _assert_same(before, _snapshot(model))
    assert seen == []  # the user's hooks ran on nothing of theirs: the trace ran on a meta replica


def test_train_mode_check_sees_batch_statistics_on_the_replica_only():
    model, _ = _prepared(Hooked(8))
    model.eval()
    before = _snapshot(model)
    report = check(model, "1x3x3x3", train=True)  # one 1x1 feature map: no batch statistics
    assert not report.ok and report.trace.stopped_at == "bn"
    assert "more than 1 value per channel" in report.trace.reason
    assert check(model, "1x3x3x3").ok  # eval mode uses the running statistics
    _assert_same(before, _snapshot(model))


def test_check_leaves_a_real_detector_as_it_was():
    model = torchvision.models.detection.fcos_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=64, max_size=96
    )
    model.head.classification_head.cls_logits = nn.Conv2d(256, 2, 3, 1, 1)
    before = _snapshot(model)
    assert not check(model, "[3x64x80]").ok
    _assert_same(before, _snapshot(model))


def test_trace_overrules_a_structural_width_guess_about_a_parallel_branch():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.side = nn.Linear(5, 4)  # fed by the second input, not by `encoder`

        def forward(self, x, y):
            return self.encoder(x) + self.side(y)

    report = check(TwoInputs(), ["2x3", "2x5"])
    assert report.ok, report.problems
    assert any("`side`.`in_features`" in note for note in report.notes)


def test_a_real_width_mistake_after_a_sequential_trunk_is_still_reported():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.encoder(x))

    report = check(Net(), "2x3")
    assert not report.ok
    assert ("fc", "in_features") in {(p.module, p.attribute) for p in report.problems}
