"""The contract every registered family keeps, tested over the registry (timm's test over its models).

Each family shipped in ``headfit/families/`` declares one or two example MODEL specs; each example goes
through recognise, heads, lint (clean as built), adapt for K=3 (the heads then give K, plus the
background where the family counts it), output classes, explain_failure and check_targets. A family
added without examples fails ``test_every_shipped_family_declares_examples``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from headfit.diagnosis import Diagnosis
from headfit.errors import UsageError
from headfit.families import Evidence, Family, all_families, family_for
from headfit.families.torchvision_detection import DetectionFamily
from headfit.live import diagnose_exception
from headfit.spec import build_model
from headfit.trace import trace

K = 3
ROOT = Path(__file__).resolve().parents[1]  # a file spec in `examples` is relative to the repository
SHIPPED = [f for f in all_families() if type(f).__module__.startswith("headfit.families.")]
EXAMPLES = [(family, spec) for family in SHIPPED for spec in family.examples]
DETECTORS = [(family, spec) for family, spec in EXAMPLES if isinstance(family, DetectionFamily)]


def _id(case: tuple[Family, str]) -> str:
    return case[1]


def _build(spec: str, device: str | None = None) -> torch.nn.Module:
    source = spec.rpartition(":")[0]
    return build_model(str(ROOT / spec) if source.endswith(".py") else spec, device=device)


def test_every_shipped_family_declares_examples():
    assert {f.name for f in SHIPPED} >= {"generic", "torchvision-rcnn", "timm"}
    undeclared = [f.name for f in SHIPPED if not 1 <= len(f.examples) <= 2]
    assert not undeclared, f"declare one or two `examples` (MODEL specs) on: {undeclared}"


@pytest.mark.parametrize("case", EXAMPLES, ids=_id)
def test_an_example_keeps_the_family_contract(case):
    family, spec = case
    if spec.startswith("timm:"):
        pytest.importorskip("timm")
    model = _build(spec, device="meta")
    assert family_for(model) is family, f"{spec} is not recognised by {family.name}"
    heads = family.heads(model)
    diagnosis = Diagnosis("HF101", "view_size_mismatch", "RuntimeError", "shape '[2, -1]' is invalid", "")
    assert isinstance(family.explain_failure(model, "", diagnosis).causes, list)
    if not heads:  # nothing to re-head (RAFT): adapt says so in a paragraph
        with pytest.raises(UsageError):
            family.adapt(model, K)
        return
    assert family.lint(model) == [], f"{spec} as built should lint clean"
    summary = family.adapt(model, K)
    outputs = K + int(family.counts_background)
    assert (summary.num_classes, summary.head_outputs) == (K, outputs)
    assert (family.num_classes(model), family.head_outputs(model)) == (K, outputs)
    class_heads = [
        h for h in family.heads(model) if h.kind in ("classifier", "aux_classifier", "box_classifier")
    ]
    assert class_heads and all(h.outputs == outputs for h in class_heads), family.heads(model)
    assert family.lint(model) == [], f"{spec} after adapt({K})"
    assert family.output_classes(model, _eval_output(family, spec, model)) == outputs
    assert family.checked_options({"keep": None}) == {"keep": None}
    with pytest.raises(UsageError, match="does not understand"):
        family.checked_options({"colour": "blue"})


def _eval_output(family: Family, spec: str, meta_model: torch.nn.Module):
    """An eval-mode output: a meta trace for models with shape-only post-processing; detectors select
    boxes by value, so they run for real on a small CPU image (re-headed the same way)."""
    if not isinstance(family, DetectionFamily):
        inputs = tuple(i.make("meta") for i in family.default_inputs(meta_model))
        return trace(meta_model, inputs).output
    model = _build(spec)
    family.adapt(model, K)
    with family.smoke_context(model), torch.no_grad():
        return model.eval()([torch.rand(3, 64, 64)])


@pytest.mark.parametrize("case", EXAMPLES, ids=_id)
def test_check_targets_is_empty_unless_the_family_takes_targets(case):
    family, spec = case
    if spec.startswith("timm:"):
        pytest.importorskip("timm")
    model = _build(spec, device="meta")
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])}]
    found = family.check_targets(model, targets)
    if not family.takes_targets:
        assert found == Evidence()
        return
    assert found.causes == []  # label 1 is valid for every detector
    past = family.head_outputs(model)
    targets[0]["labels"] = torch.tensor([1, past])
    (label,) = [c for c in family.check_targets(model, targets).causes if c.attribute in ("labels", "num_classes")]
    assert label.fix.endswith(f"`headfit.adapt(model, {family.classes_for_label(past)})`")
    if family.counts_background:  # labels 1..K on K outputs: the K given as num_classes left out the background
        assert (label.module, label.attribute) == (family.class_head, "num_classes"), label


@pytest.mark.parametrize("case", DETECTORS, ids=_id)
def test_a_label_out_of_range_in_training_gets_one_cause_with_the_familys_count(case):
    """The live diagnosis of a real train step with label 7 on a head re-headed for 3 classes: one cause,
    `headfit.adapt(detector, 7 + 1)` without background, `adapt(detector, 7)` with it, in the user's name."""
    family, spec = case
    detector = _build(spec)
    family.adapt(detector, K)
    images = [torch.rand(3, 128, 128) for _ in range(family.smoke_images)]  # SSDlite's BatchNorm needs 2
    targets = [
        {"boxes": torch.tensor([[16.0, 24.0, 96.0, 112.0]]), "labels": torch.tensor([7])} for _ in images
    ]
    with family.smoke_context(detector), pytest.raises((IndexError, RuntimeError)) as raised:
        detector.train()(images, targets)
    diagnosis = diagnose_exception(raised.value)
    needed = 7 if family.counts_background else 8
    assert len(diagnosis.causes) == 1, [(c.summary, c.fix) for c in diagnosis.causes]
    assert diagnosis.causes[0].fix.endswith(f"`headfit.adapt(detector, {needed})`")
    said = " ".join([diagnosis.summary, *diagnosis.facts, diagnosis.causes[0].summary])
    assert ("0 is the background" in said) == family.counts_background
