"""torchvision segmentation (FCN, DeepLabV3, LRASPP) and optical flow (RAFT) families."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as M
from torch import nn

from headfit.catalogue import code_info
from headfit.diagnosis import Diagnosis
from headfit.errors import UsageError
from headfit.families import family_for

SEGMENTATION = M.list_models(module=M.segmentation)
WITH_AUX = [
    (name, aux) for name in SEGMENTATION for aux in (False, True) if not (name.startswith("lraspp") and aux)
]


def build(name: str, device: str = "meta", **kwargs) -> nn.Module:
    if name in SEGMENTATION:
        kwargs["weights_backbone"] = None
    with torch.device(device):
        return M.get_model(name, weights=None, **kwargs)


def the_problem(model: nn.Module, code: str):
    problems = family_for(model).lint(model)
    assert [p.code for p in problems] == [code], [p.summary for p in problems]
    return problems[0]


@pytest.mark.parametrize("name,aux", WITH_AUX)
def test_adapt_every_builder_on_meta(name, aux):
    model = build(name, aux_loss=aux)
    family = family_for(model)
    assert family.name == "torchvision-segmentation"
    assert family.lint(model) == [] and family.num_classes(model) == 21
    summary = family.adapt(model, 3)
    expected = (
        ["classifier.high_classifier", "classifier.low_classifier"]
        if name.startswith("lraspp")
        else ["classifier.4", "aux_classifier.4"][: 1 + aux]
    )
    assert summary.replaced == expected
    assert [h.outputs for h in family.heads(model)] == [3] * len(expected)
    assert family.lint(model) == []


def test_deeplab_mobilenet_aux_head_left_at_21():
    model = build("deeplabv3_mobilenet_v3_large", aux_loss=True)
    model.classifier[4] = nn.Conv2d(256, 5, kernel_size=1)
    problem = the_problem(model, "HF222")
    assert (problem.module, problem.attribute) == ("aux_classifier.4", "out_channels")
    assert problem.fix == "model.aux_classifier[4] = nn.Conv2d(10, 5, kernel_size=1)"  # FCNHead(40): 40 // 4


def test_lraspp_low_and_high_disagree():
    model = build("lraspp_mobilenet_v3_large")
    model.classifier.high_classifier = nn.Conv2d(128, 5, kernel_size=1)
    problem = the_problem(model, "HF223")
    assert problem.module == "classifier.low_classifier"
    assert problem.fix == "model.classifier.low_classifier = nn.Conv2d(40, 5, kernel_size=1)"
    info = code_info("HF223")
    assert info is not None and info.category == "segmentation_branch_mismatch"


def test_lraspp_low_classifier_width():
    model = build("lraspp_mobilenet_v3_large")
    model.classifier.low_classifier = nn.Conv2d(16, 21, kernel_size=1)
    problem = the_problem(model, "HF220")
    assert "`backbone[4]` produces 40" in problem.summary


def test_fcn_head_width_against_the_backbone():
    model = build("fcn_resnet50")
    model.classifier[0] = nn.Conv2d(1024, 512, kernel_size=3, padding=1, bias=False)
    problem = the_problem(model, "HF220")
    assert (problem.module, problem.attribute) == ("classifier.0", "in_channels")
    assert "`backbone.layer4` produces 2048" in problem.summary


def test_deeplab_aspp_is_read_as_a_block():
    model = build("deeplabv3_resnet50")
    model.classifier[1] = nn.Conv2d(512, 256, kernel_size=3, padding=1, bias=False)
    problem = the_problem(model, "HF220")
    assert "`classifier[0]` produces 256" in problem.summary


def test_a_real_lraspp_error_is_explained_by_the_live_model():
    model = build("lraspp_mobilenet_v3_large", device="cpu").eval()
    model.classifier.high_classifier = nn.Conv2d(128, 5, kernel_size=1)
    with pytest.raises(RuntimeError) as error:
        model(torch.rand(1, 3, 64, 64))
    message = str(error.value)
    assert "must match the size of tensor b" in message
    diagnosis = Diagnosis(None, None, "RuntimeError", message, "")
    evidence = family_for(model).explain_failure(model, "classifier", diagnosis)
    (cause,) = evidence.causes
    assert cause.fix == "model.classifier.low_classifier = nn.Conv2d(40, 5, kernel_size=1)"
    assert "`classifier.high_classifier` emits 5 classes" in evidence.facts


@pytest.mark.parametrize(
    "name,aux", [("lraspp_mobilenet_v3_large", False), ("deeplabv3_mobilenet_v3_large", True)]
)
def test_real_adapt_changes_only_the_heads_and_trains(name, aux):
    torch.manual_seed(0)
    model = build(name, device="cpu", aux_loss=aux)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    family = family_for(model)
    summary = family.adapt(model, 3, keep=[0, 15, 7])
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {f"{p}.{w}" for p in summary.replaced for w in ("weight", "bias")}
    first = summary.replaced[0]
    assert torch.equal(after[f"{first}.weight"], before[f"{first}.weight"][[0, 15, 7]])
    batch = family.smoke_batch(model, 3)
    output = model.train()(*batch.args)
    loss = family.smoke_loss(model, output, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert set(output) == ({"out", "aux"} if aux else {"out"})
    assert family.output_classes(model, output) == 3


def test_bad_keep_is_a_usage_error():
    model = build("fcn_resnet50")
    with pytest.raises(UsageError, match="outside the source head"):
        family_for(model).adapt(model, 2, keep=[0, 21])


# --- RAFT ----------------------------------------------------------------------------------------------


def test_raft_has_no_head_and_takes_two_images():
    model = build("raft_small").eval()
    family = family_for(model)
    assert family.name == "torchvision-flow"
    assert family.heads(model) == [] and family.lint(model) == []
    assert family.size_rule(model).multiple_of == 8
    inputs = [spec.make("meta") for spec in family.default_inputs(model)]
    flows = model(*inputs)
    assert flows[-1].shape == (1, 2, *inputs[0].shape[-2:])
    with pytest.raises(UsageError, match="no class head"):
        family.adapt(model, 3)
