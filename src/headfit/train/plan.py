"""What a run chose and why, and the pre-flight stop: plain data for the start-of-run summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from headfit.errors import HeadfitError


class PreflightFailed(HeadfitError):
    """The data check or the model check found problems before the first step (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, details: list[Any]) -> None:
        super().__init__(message)
        self.details = details  # data Problems or check Problems, rendered by the CLI


@dataclass
class Choice:
    topic: str
    value: str
    why: str = ""


@dataclass
class TrainPlan:
    """What the run chose and why, the files it dropped, and the pre-flight results (rendered by the CLI)."""

    run: Path
    choices: list[Choice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[Any] = field(default_factory=list)  # data Problems of images left out (--allow-drop)
    load: Any = None  # LoadReport of --weights
    check: Any = None  # CheckReport of the pre-flight check
    resumed: str | None = None  # "epoch 3, batch 40" when resuming
    evaluate: str = ""  # the `headfit evaluate` command of the run's best checkpoint on its val data

    def add(self, topic: str, value: str, why: str = "") -> None:
        self.choices.append(Choice(topic, value, why))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "choices": [asdict(c) for c in self.choices],
            "notes": list(self.notes),
            "dropped": [p.to_dict() for p in self.dropped],
            "resumed": self.resumed,
            "evaluate": self.evaluate,
        }
