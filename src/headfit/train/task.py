"""What the training loop asks of a task (detection now; classification later), and nothing more.

The loop (``loop.py``) owns the optimizer, the schedule, AMP, clipping, EMA, the state file, the
metrics log and the display. A task owns its data, its forward and loss, its validation metrics,
how its model is saved, and what a batch says when the loss stops being finite. The loop never
looks inside a batch or a model, so a new task is one new module implementing this protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from headfit.diagnosis import Cause
    from headfit.train.metrics import MetricsLog


@dataclass
class Batch:
    """One step's data: what the task's forward takes, how many samples, and ids for diagnoses."""

    inputs: Any
    targets: Any
    size: int
    meta: Any = None


@dataclass
class BatchEvidence:
    """What a batch shows when its loss is not finite: facts with numbers, and causes with fixes."""

    facts: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)


class Task(Protocol):
    name: str
    primary_metric: str  # the validation metric that picks the best epoch (higher is better)
    metric_columns: tuple[str, ...]  # validation metrics written to metrics.csv, in order

    def batches_per_epoch(self) -> int: ...

    def batches(self, epoch: int, start: int) -> Iterable[Batch]:
        """Epoch ``epoch``'s batches from batch ``start`` on, in an order fixed by the run's seed."""
        ...

    def loss_terms(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """The train-mode forward of ``batch``: named scalar losses, summed by the loop."""
        ...

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics of ``model`` (in eval mode), keyed like ``metric_columns``."""
        ...

    def save_model(self, model: nn.Module, path: Path, extra: dict[str, Any]) -> None:
        """Write ``model`` as a checkpoint the other commands read (e.g. ``best.safetensors``);
        ``extra`` (the epoch and its metrics) goes into its metadata."""
        ...

    def after_epoch(self, model: nn.Module, run: Path, log: MetricsLog, improved: bool) -> None:
        """Per-epoch extras, such as plots (called on the main rank only)."""
        ...

    def batch_evidence(self, batch: Batch) -> BatchEvidence:
        """Facts and causes from the data of a batch whose loss was not finite."""
        ...
