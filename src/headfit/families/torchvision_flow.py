"""torchvision optical flow: RAFT (``raft_large``, ``raft_small``).

RAFT has no class head: it takes two images and predicts a flow field, so there is nothing to re-head.
Its feature encoders downsample by 8 and the correlation volume is built at 1/8 resolution, so both
images must have the same size, with H and W multiples of 8.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.optical_flow.raft import RAFT

from headfit.errors import UsageError
from headfit.families.base import AdaptSummary, Family, SizeRule, register_family
from headfit.inputs import InputSpec

DOWNSAMPLING = 8
# The correlation pyramid halves the 1/8 map (num_levels - 1) times; 128 leaves 2x2 at the coarsest of 4
TRACE_SIZE = (128, 128)


@register_family
class TorchvisionFlow(Family):
    name = "torchvision-flow"
    priority = 20
    examples = ("torchvision:raft_small",)

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return isinstance(model, RAFT)

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        image = InputSpec.batch(1, 3, *TRACE_SIZE)
        return [image, image]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        return SizeRule(
            multiple_of=DOWNSAMPLING,
            notes=["both images must have the same size; RAFT works at 1/8 resolution"],
        )

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        raise UsageError(
            "RAFT predicts optical flow and has no class head, so there is nothing to re-head for "
            f"{num_classes} classes; fine-tune it as it is on your flow data"
        )
