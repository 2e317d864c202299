"""enrich(): live evidence merged into a message-only diagnosis, fixes written with the user's names."""

from __future__ import annotations

from torch import nn

from headfit.diagnosis import Cause, Diagnosis
from headfit.enrich import enrich, merge_causes


def _diagnosis(*causes: Cause) -> Diagnosis:
    return Diagnosis("HF103", "linear_shape_mismatch", "RuntimeError", "m", "s", causes=list(causes))


def test_message_only_fixes_take_the_users_name_for_the_model():
    net = nn.Sequential(nn.Linear(4, 3))
    guess = Cause(
        "the layer is too narrow", 0.5, "0", "in_features", "model.0 = nn.Linear(8, 3)  # the model."
    )
    fixed = enrich(_diagnosis(guess), net, "0", prefix="net")
    assert "net.0 = nn.Linear(8, 3)  # the model." in [c.fix for c in fixed.causes]


def test_live_causes_replace_message_causes_about_the_same_attribute_or_fix():
    message = [
        Cause("guess a", 0.9, "fc", "in_features", "model.fc = nn.Linear(512, 10)"),
        Cause("guess b", 0.4, None, None, "x = x.flatten(1)"),
        Cause("guess c", 0.3, "other", None, "model.fc = nn.Linear(2048, 10)"),
    ]
    live = [Cause("live", 0.95, "fc", "in_features", "model.fc = nn.Linear(2048, 10)")]
    assert [c.summary for c in merge_causes(message, live)] == ["live", "guess b"]
