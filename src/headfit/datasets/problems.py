"""What ``data check`` finds, as plain data: a ``Problem`` names the dataset's own ids and the numbers.

Codes are HF3nn, one ``codes/HF3nn.md`` each. Readers record the problems only they can see (an
annotation naming no image, a line that does not parse) on the dataset; ``lint`` adds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Id = int | str  # a dataset's own image, annotation or category id


@dataclass
class Problem:
    """One thing wrong in the data, named by the dataset's ids (None where an id does not apply)."""

    code: str
    summary: str  # one lowercase line with the numbers worked out
    fix: str  # the exact change to the data, or the flag that makes it
    image_id: Id | None = None
    annotation_id: Id | None = None
    file: str | None = None  # the image file, as the dataset resolves it
    facts: list[str] = field(default_factory=list)  # what the terminal prints under the summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "image_id": self.image_id,
            "annotation_id": self.annotation_id,
            "file": self.file,
            "summary": self.summary,
            "fix": self.fix,
        }
