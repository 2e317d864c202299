"""The finder registry of ``headfit.evidence``: order, codes, a finder's failure kept to itself."""

from __future__ import annotations

import pytest

import headfit.evidence  # noqa: F401  (registers the finders)
from headfit.diagnosis import Cause, Diagnosis
from headfit.evidence import base
from headfit.evidence.base import LiveEvidence, data_evidence, finder, message_is_about
from headfit.scene import Scene


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(base, "_FINDERS", [])
    return base._FINDERS


def test_finders_are_asked_by_priority_and_the_first_code_wins(registry):
    @finder(code="HF999", priority=90)
    def late(scene, exc):
        return LiveEvidence(["late fact"], [Cause("late", 0.5)])

    @finder(code="HF135", priority=10)
    def early(scene, exc):
        return LiveEvidence(["early fact"], [Cause("early", 0.9)])

    @finder(code="HF131", priority=10)
    def same_priority_later(scene, exc):
        return None

    found = data_evidence(Scene(frames=[]), RuntimeError("x"), Diagnosis(None, None, "E", "x", ""))
    assert [r.find.__name__ for r in registry] == ["early", "same_priority_later", "late"]
    assert (found.code, found.facts, [c.summary for c in found.causes]) == (
        "HF135",
        ["early fact", "late fact"],
        ["early", "late"],
    )


def test_a_finder_that_raises_hides_no_other(registry):
    @finder(code="HF136")
    def broken(scene, exc):
        raise KeyError("a blind spot")

    @finder(code="HF133")
    def working(scene, exc):
        return LiveEvidence([], [Cause("found", 0.9)], settles=True)

    found = data_evidence(Scene(frames=[]), RuntimeError("x"), Diagnosis(None, None, "E", "x", ""))
    assert (found.code, found.settles, [c.summary for c in found.causes]) == ("HF133", True, ["found"])


def test_the_registry_holds_every_domain_in_order():
    names = [r.find.__name__ for r in base._FINDERS]
    assert names[:2] == ["last_batch_of_one", "collate_sizes"] and names[-1] == "grey_input"
    assert {"loss_input", "embedding_index", "detection_targets", "prefixed_state_dict"} <= set(names)
    assert {"model_images", "user_input_layout", "flatten_producer", "window_too_large"} <= set(names)


@pytest.mark.parametrize(
    "message, label, about",
    [
        ("Target 5 is out of bounds.", 5, True),
        ("index 7 is out of bounds for dimension 2 with size 3", 7, True),
        ("Target 5 is out of bounds.", 6, False),
        ("CUDA error: device-side assert triggered", 9, True),
        ("stack expects each tensor to be equal size", 1, False),
    ],
)
def test_a_label_settles_only_the_error_that_is_about_it(message, label, about):
    assert message_is_about(RuntimeError(message), label) is about
