"""``RUN/metrics.csv``: one row per finished epoch, rewritten atomically after each epoch.

Columns: ``epoch``, ``lr``, each loss term the task reported, ``train_loss``, the validation metrics
(``val_AP``, ``val_AP50``, ``val_AP75`` for detection) and ``seconds``. A resumed run reads the rows
back and drops any epoch its state does not include (a kill between the two writes).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from headfit.files import atomic_write_text
from headfit.train.rundir import RESUME_ADVICE

METRICS_FILE = "metrics.csv"
FIRST, LAST = ("epoch", "lr"), ("seconds",)


class MetricsLog:
    def __init__(self, path: Path, rows: list[dict[str, float]] | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = list(rows or [])

    @classmethod
    def read(cls, path: Path, up_to_epoch: int) -> MetricsLog:
        """The rows of epochs 1..``up_to_epoch`` already in ``path`` (none if it does not exist)."""
        if not path.is_file():
            return cls(path)
        with path.open(encoding="utf-8", newline="") as file:
            rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(file)]
        return cls(path, [r for r in rows if r.get("epoch", math.inf) <= up_to_epoch])

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))
        self.write()

    def columns(self) -> list[str]:
        seen: list[str] = []
        for row in self.rows:
            seen.extend(k for k in row if k not in seen)
        middle = [k for k in seen if k not in FIRST + LAST]
        return [*[k for k in FIRST if k in seen], *middle, *[k for k in LAST if k in seen]]

    def write(self) -> None:
        columns = self.columns()
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
        atomic_write_text(self.path, out.getvalue(), RESUME_ADVICE)

    def series(self, column: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of a column, skipping epochs where it is missing."""
        pairs = [(r["epoch"], r[column]) for r in self.rows if column in r and not _missing(r[column])]
        return [p[0] for p in pairs], [p[1] for p in pairs]


def _cell(value: float | None) -> str:
    if value is None or _missing(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _missing(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
