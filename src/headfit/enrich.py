"""Merge what the live objects say into a diagnosis made from the message alone.

Used by ``check`` (the trace knows the model, the failing module and the shapes that reached it) and by
the live hooks (``headfit run``, ``install()``, ``diagnosing()``), which find the same from the frames.
When live evidence contradicts the message-only reasoning, the live evidence wins: its causes replace
those about the same finding, and rank by their own confidence. Families and evidence finders write
fixes for a model named ``model``; ``name_the_model`` writes the user's own name into them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from headfit.diagnosis import Cause, Diagnosis, Location
from headfit.families import Evidence, family_for

if TYPE_CHECKING:
    from torch import nn


def enrich(
    diagnosis: Diagnosis,
    model: nn.Module,
    module_path: str,
    *,
    prefix: str = "model",
    input_shapes: list[list[int]] | None = None,
) -> Diagnosis:
    """Add the failing module's location and the live evidence of the model's family and of the layer."""
    module = dict(model.named_modules()).get(module_path)
    if module is not None:
        old = diagnosis.location or Location()
        diagnosis.location = Location(module_path, type(module).__name__, old.file, old.line, old.source)
    for evidence in _evidence(diagnosis, model, module_path, module, input_shapes):
        diagnosis.facts.extend(f for f in evidence.facts if f not in diagnosis.facts)
        diagnosis.causes = merge_causes(diagnosis.causes, evidence.causes)
    name_the_model(diagnosis.causes, prefix)
    return diagnosis.ranked()


# a fix's `model` names the user's model where it is an expression: `model.fc`, `model[0]`, `adapt(model, 3)`
_MODEL_EXPR = re.compile(r"(?<![\w.])model(?=\.\w|\[|\s*[,)])")


def name_the_model(causes: list[Cause], prefix: str) -> None:
    """Write the user's name for the model (``detector``) where a fix says ``model``."""
    if prefix == "model":
        return
    for cause in causes:
        cause.fix = cause.fix and _MODEL_EXPR.sub(prefix, cause.fix)


def _evidence(diagnosis, model, module_path, module, input_shapes) -> list[Evidence]:
    from headfit.evidence.layer import layer_evidence  # per-layer knowledge (imports torch)

    found = [family_for(model).explain_failure(model, module_path, diagnosis)]
    if module is not None:
        found.append(layer_evidence(module, module_path, diagnosis, input_shapes))
    return found


def merge_causes(old: list[Cause], new: list[Cause]) -> list[Cause]:
    """Live causes first; an older cause about the same finding is dropped (the live one says it with the
    live numbers): the same module and attribute, the same module when the older names no attribute, the
    same field of the data (no module, the same attribute: ``labels``, ``boxes``), or the same fix."""
    findings = {(c.module, c.attribute) for c in new if c.module is not None or c.attribute is not None}
    modules = {c.module for c in new if c.module is not None}
    fixes = {c.fix for c in new if c.fix}

    def superseded(cause: Cause) -> bool:
        return (
            (cause.module, cause.attribute) in findings
            or (cause.attribute is None and cause.module in modules)
            or bool(cause.fix and cause.fix in fixes)
        )

    return new + [c for c in old if not superseded(c)]
