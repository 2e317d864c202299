"""enrich(): live evidence merged into a message-only diagnosis, fixes written with the user's names."""

from __future__ import annotations

from torch import nn

from headfit.diagnosis import Cause, Diagnosis
from headfit.enrich import enrich, merge_causes, name_the_model


def _diagnosis(*causes: Cause) -> Diagnosis:
    return Diagnosis("HF103", "linear_shape_mismatch", "RuntimeError", "m", "s", causes=list(causes))


def test_message_only_fixes_take_the_users_name_for_the_model():
    net = nn.Sequential(nn.Linear(4, 3))
    guess = Cause(
        "the layer is too narrow", 0.5, "0", "in_features", "model.0 = nn.Linear(8, 3)  # the model."
    )
    fixed = enrich(_diagnosis(guess), net, "0", prefix="net")
    assert "net.0 = nn.Linear(8, 3)  # the model." in [c.fix for c in fixed.causes]


def test_the_users_name_replaces_model_as_an_expression_and_as_an_argument():
    causes = [
        Cause("a", 0.9, None, "labels", "keep labels in 0..2, or re-head: `headfit.adapt(model, 8)`"),
        Cause("b", 0.5, "fc", None, "model.fc = nn.Linear(512, 3); model[0].eval(); torch.compile(model)"),
        Cause("c", 0.4, None, None, "model = builder(num_classes=3); my_model.eval()"),
    ]
    name_the_model(causes, "detector")
    assert [c.fix for c in causes] == [
        "keep labels in 0..2, or re-head: `headfit.adapt(detector, 8)`",
        "detector.fc = nn.Linear(512, 3); detector[0].eval(); torch.compile(detector)",
        "model = builder(num_classes=3); my_model.eval()",
    ]


def test_live_causes_replace_message_causes_about_the_same_finding():
    message = [
        Cause("guess a", 0.9, "fc", "in_features", "model.fc = nn.Linear(512, 10)"),
        Cause("guess b", 0.4, None, None, "x = x.flatten(1)"),
        Cause("guess c", 0.3, "other", None, "model.fc = nn.Linear(2048, 10)"),
    ]
    live = [Cause("live", 0.95, "fc", "in_features", "model.fc = nn.Linear(2048, 10)")]
    assert [c.summary for c in merge_causes(message, live)] == ["live", "guess b"]


def test_a_live_cause_about_a_field_of_the_data_or_a_whole_module_replaces_the_message_guess():
    message = [
        Cause("label guess", 0.9, None, "labels", "keep labels in 0..2: `headfit.adapt(model, 7)`"),
        Cause("conv guess", 0.3, "head.cls_logits", None, "model.head.cls_logits = nn.Conv2d(256, 3, 3)"),
        Cause("other module", 0.3, "head.bbox_reg", None, "model.head.bbox_reg = nn.Conv2d(256, 4, 3)"),
    ]
    live = [
        Cause("live labels", 0.95, None, "labels", "keep labels in 0..2: `headfit.adapt(model, 8)`"),
        Cause("live conv", 0.5, "head.cls_logits", "out_channels", "headfit.adapt(model, 3)"),
    ]
    assert [c.summary for c in merge_causes(message, live)] == ["live labels", "live conv", "other module"]
