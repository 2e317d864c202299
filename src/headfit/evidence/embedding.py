"""Token ids past the rows of the ``nn.Embedding`` that indexes them (``index out of range in self``)."""

from __future__ import annotations

from torch import nn

from headfit.diagnosis import Cause
from headfit.evidence.base import LiveEvidence, finder, name_of
from headfit.evidence.loss import LABEL_CODE
from headfit.modulepath import module_expr, module_name
from headfit.scene import Scene, failing_method_frame, frame_inputs


@finder(code=LABEL_CODE, priority=30)
def embedding_index(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    module = scene.module
    if not isinstance(module, nn.Embedding):
        return None
    inputs = frame_inputs(failing_method_frame(scene))
    if not inputs or inputs[0][1].numel() == 0:
        return None
    ids = inputs[0][1]
    high, low = int(ids.max()), int(ids.min())
    if 0 <= low and high < module.num_embeddings:
        return None
    path = scene.module_path
    name = name_of(scene, ids, "token_ids")
    facts = [
        f"`{module_name(path)}` has {module.num_embeddings} rows (`num_embeddings`, ids 0..{module.num_embeddings - 1}); `{name}` holds ids from {low} to {high}"
    ]
    fix = f"{module_expr(scene.prefix, path)} = nn.Embedding({high + 1}, {module.embedding_dim})"
    cause = Cause(f"id {high} is past the last row of `{module_name(path)}`", 0.85, path, "num_embeddings", fix)
    return LiveEvidence(facts, [cause])
