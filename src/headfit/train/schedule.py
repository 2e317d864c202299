"""The learning rate: scaled by the total batch, warmed up linearly, then a cosine to a floor.

torchvision's detection recipes state their lr for a total batch of 16 (8 GPUs x 2 images); with
another batch, the linear scaling rule (Goyal et al., 2017) scales SGD's lr in proportion. AdamW's
lr is scaled by the square root of the ratio instead (the rule for adaptive optimisers). The warmup
follows ``references/detection/engine.py`` (linear from 1/1000 over at most 1000 iterations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

WARMUP_START = 1e-3  # torchvision's warmup_factor
MAX_WARMUP_ITERS = 1000
FLOOR = 0.01  # the cosine ends at 1% of the peak lr


@dataclass(frozen=True)
class LrChoice:
    """The lr a run uses and how it was worked out, for the start-of-run summary."""

    lr: float
    why: str


def scaled_lr(reference_lr: float, reference_batch: int, total_batch: int, optimizer: str) -> LrChoice:
    """``reference_lr`` (given for ``reference_batch`` images) rescaled for ``total_batch`` images."""
    ratio = total_batch / reference_batch
    if optimizer == "adamw":
        lr = reference_lr * math.sqrt(ratio)
        rule = f"sqrt({total_batch}/{reference_batch})"
    else:
        lr = reference_lr * ratio
        rule = f"{total_batch}/{reference_batch}"
    return LrChoice(lr, f"{reference_lr:g} at batch {reference_batch} x {rule} for batch {total_batch}")


def warmup_iterations(steps_per_epoch: int) -> int:
    """One epoch of warmup or 1000 iterations, whichever is shorter (as torchvision's engine)."""
    return max(1, min(MAX_WARMUP_ITERS, steps_per_epoch))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total``."""
    if step < warmup:
        alpha = step / warmup
        return WARMUP_START * (1 - alpha) + alpha
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosine(torch.optim.lr_scheduler.LambdaLR):
    """``LambdaLR`` stepped once per iteration. ``total`` can grow on resume (``--epochs N`` extends a
    run): the state dict keeps the step count, the new total reshapes the rest of the cosine."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total
        super().__init__(optimizer, lambda step: lr_factor(step, self.warmup, self.total))

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in ("warmup", "total")})
        # recompute the lr for the current step with this run's (possibly extended) total
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * lr_factor(self.last_epoch, self.warmup, self.total)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
