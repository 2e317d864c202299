"""A tiny model and a test-only family that re-heads it, with switchable bugs (``TinyFamily.sabotage``).

``SPEC`` names ``TinyNet`` as a ``package.module:CALLABLE`` spec: this module is importable under that
name, so ``build_model(SPEC)`` and sidecars work without a file path.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

import torch
from torch import nn

from headfit.errors import UsageError
from headfit.families import AdaptSummary, Family, register_family
from headfit.families.base import SizeRule
from headfit.inputs import InputSpec

SPEC = "headfit_tiny_test_models:TinyNet"  # this module, importable under that name (see below)
sys.modules.setdefault("headfit_tiny_test_models", sys.modules[__name__])


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(3, 8, 3), bn=nn.BatchNorm2d(8), relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1)
            )
        )
        self.fc = nn.Linear(8, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


@register_family
class TinyFamily(Family):
    """Re-heads TinyNet's ``fc``; ``sabotage`` injects one family bug at a time."""

    name = "test-tiny"
    priority = 1
    sabotage: str | None = None

    def recognises(self, model: nn.Module) -> bool:
        return isinstance(model, TinyNet)

    def num_classes(self, model: nn.Module) -> int | None:
        return model.fc.out_features

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        return [InputSpec.batch(2, 3, 32, 32)]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        return SizeRule(minimum=3)

    def adapt(self, model: nn.Module, num_classes: int, *, keep=None, **options) -> AdaptSummary:
        if options:
            raise UsageError(f"the test-tiny family does not understand {sorted(options)}")
        old = model.fc
        new = nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype)
        if keep is not None:
            with torch.no_grad():
                new.weight.copy_(old.weight[keep])
                new.bias.copy_(old.bias[keep])
        self._sabotage(model, new)
        model.fc = new
        model.num_classes = num_classes
        outputs = num_classes + int(self.sabotage == "miscounted")
        return AdaptSummary(self.name, num_classes, outputs, ["fc"], {"num_classes": num_classes})

    def _sabotage(self, model: nn.Module, new: nn.Linear) -> None:
        with torch.no_grad():
            if self.sabotage == "touch_body":
                model.body.conv.weight.add_(1e-3)
            elif self.sabotage == "nan_head":
                new.bias.fill_(float("nan"))
        if self.sabotage == "frozen_head":
            new.requires_grad_(False)
