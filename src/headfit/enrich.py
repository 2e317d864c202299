"""Merge what the live objects say into a diagnosis made from the message alone.

Used by ``check`` (the trace knows the model, the failing module and the shapes that reached it) and by
the live hooks (``headfit run``, ``install()``, ``diagnosing()``), which find the same from the frames.
When live evidence contradicts the message-only reasoning, the live evidence wins: its causes replace
those that name the same module and attribute, and rank by their own confidence.
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
    for evidence in _evidence(diagnosis, model, module_path, module, prefix, input_shapes):
        diagnosis.facts.extend(f for f in evidence.facts if f not in diagnosis.facts)
        diagnosis.causes = merge_causes(diagnosis.causes, evidence.causes)
    if prefix != "model":
        for cause in diagnosis.causes:
            cause.fix = cause.fix and _MODEL_EXPR.sub(prefix, cause.fix)
    return diagnosis.ranked()


# message-only fixes name the model `model`; the user's own name replaces it where it is an expression
_MODEL_EXPR = re.compile(r"(?<![\w.])model(?=\.\w|\[)")


def _evidence(diagnosis, model, module_path, module, prefix, input_shapes) -> list[Evidence]:
    from headfit import layers  # per-layer knowledge: Linear, Conv, BatchNorm, ... (imports torch)

    found = [family_for(model).explain_failure(model, module_path, diagnosis, prefix)]
    if module is not None:
        found.append(layers.layer_evidence(module, module_path, diagnosis, prefix, input_shapes))
    return found


def merge_causes(old: list[Cause], new: list[Cause]) -> list[Cause]:
    """Live causes first; a message-only cause about the same module and attribute, or with the same
    fix, is dropped (the live one says it with the live numbers)."""
    replaced = {(c.module, c.attribute) for c in new if c.module is not None}
    fixes = {c.fix for c in new if c.fix}
    kept = [c for c in old if c.module is None or (c.module, c.attribute) not in replaced]
    return new + [c for c in kept if not (c.fix and c.fix in fixes)]
