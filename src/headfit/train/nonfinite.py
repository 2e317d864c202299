"""HF401: the loss (or the gradient) stopped being finite. Which term, when, on which data, and why.

Computed from what the loop saw: the loss terms of the failing step, the recent loss history, the
lr and the batch size, the AMP mode, and what the task reads in the batch (its image ids and boxes).
The causes are ranked by that evidence: a degenerate box in the batch, an fp16 overflow, a loss that
was climbing before it blew up (lr too high for the batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from headfit.diagnosis import Cause, Diagnosis
from headfit.train.task import BatchEvidence

CODE = "HF401"
CATEGORY = "nonfinite_loss"


@dataclass
class StepFacts:
    """The failing step, as the loop saw it."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based within the epoch
    batches: int
    step: int  # optimizer steps done before this one
    terms: dict[str, float]  # every loss term of the step; "gradient norm" when the loss was finite
    lr: float  # at this step
    peak_lr: float  # what --lr sets (the schedule scales it)
    total_batch: int
    amp: str | None
    history: list[float] = field(default_factory=list)  # total loss of the last steps, oldest first
    warmup: int = 0
    resumable: bool = False  # a state was saved that a resume can start from


def nonfinite_diagnosis(facts: StepFacts, evidence: BatchEvidence) -> Diagnosis:
    bad = [name for name, value in facts.terms.items() if not math.isfinite(value)]
    what = ", ".join(f"`{name}` = {facts.terms[name]}" for name in bad)
    summary = f"the loss became non-finite ({what}) at epoch {facts.epoch}, batch {facts.batch}"
    lines = [
        f"epoch {facts.epoch}/{facts.epochs}, batch {facts.batch}/{facts.batches}, optimizer step "
        f"{facts.step + 1}",
        f"lr {facts.lr:.3g} for a total batch of {facts.total_batch}"
        + (" (still warming up)" if facts.step < facts.warmup else ""),
    ]
    if len(bad) < len(facts.terms):  # the terms that were still finite say where it did not start
        lines.insert(1, "loss terms: " + ", ".join(f"{k} = {v:.4g}" for k, v in facts.terms.items()))
    if facts.history:
        lines.append("total loss of the last steps: " + ", ".join(f"{v:.3g}" for v in facts.history))
    lines.extend(evidence.facts)
    causes = [*evidence.causes, *_loop_causes(facts)]
    diagnosis = Diagnosis(
        code=CODE,
        category=CATEGORY,
        error_type="FloatingPointError",
        message=f"non-finite loss: {what}",
        summary=summary,
        facts=lines,
        causes=causes,
    )
    return diagnosis.ranked()


def _loop_causes(facts: StepFacts) -> list[Cause]:
    causes = []
    if facts.amp == "fp16":
        causes.append(
            Cause(
                summary="float16 overflow under AMP: activations or losses above 65,504 become inf",
                confidence=0.7,
                fix="train with `--amp bf16` (same speed on Ampere and newer GPUs, float32's range) or `--amp off`",
            )
        )
    climbing = _climbing(facts.history)
    lr = f"the lr {facts.peak_lr:.3g}" + (
        f" ({facts.lr:.3g} at this warmup step)" if facts.step < facts.warmup else ""
    )
    how = "resume with" if facts.resumable else "start again with"
    causes.append(
        Cause(
            summary=(
                f"{lr} is too high for a batch of {facts.total_batch}: the loss was climbing before it blew up"
                if climbing
                else f"{lr} may be too high for a batch of {facts.total_batch}"
            ),
            confidence=0.75 if climbing else 0.4,
            attribute="lr",
            fix=f"{how} a 10x lower lr: `--lr {facts.peak_lr / 10:.3g}` (or a larger `--batch` with the same lr)",
        )
    )
    return causes


def _climbing(history: list[float]) -> bool:
    """The last steps' loss went up by half or more from its lowest point before the blow-up."""
    finite = [v for v in history if math.isfinite(v)]
    return len(finite) >= 2 and finite[-1] > 1.5 * min(finite)
