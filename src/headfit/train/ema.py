"""An exponential moving average of the weights, on ``torch.optim.swa_utils.AveragedModel``.

The decay ramps up from 0 (``decay * (1 - exp(-updates / tau))``, as YOLOv5's ModelEMA does), so the
average is not dominated by the random head of the first steps. BatchNorm statistics are averaged too
(``use_buffers=True``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

DECAY = 0.9999
TAU = 2000.0


def ramped_decay(updates: int, decay: float = DECAY, tau: float = TAU) -> float:
    return decay * (1 - math.exp(-updates / tau))


def _ema_update(decay: float, tau: float):
    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        d = ramped_decay(int(num_averaged) + 1, decay, tau)
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - d)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # e.g. BatchNorm's num_batches_tracked
                a.copy_(c)

    return update


def make_ema(model: nn.Module, decay: float = DECAY, tau: float = TAU) -> AveragedModel:
    """A copy of ``model`` that ``ema.update_parameters(model)`` moves towards it after each step."""
    return AveragedModel(model, multi_avg_fn=_ema_update(decay, tau), use_buffers=True)
