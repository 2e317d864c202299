"""What the traceback shows: each frame's file, function and source line read for the signs that pin a
culprit (a DataLoader's collate, a summary tool's own dummy input, a reshape that folds an axis into the
batch, a ``squeeze()``, labels indexing the class scores, ...).

Every diagnosis made from a traceback states, as ``traceback shows ...`` facts, the user's failing line
and the signs found; rules ask ``shows(parsed, tag)`` to rank their causes. Signs are data: one row of
``SIGNS`` per kind of frame. No torch here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache

from headfit.explain.parse import Frame, ParsedError


@dataclass(frozen=True)
class Sign:
    """A kind of frame: its file, function and source line match these regexes (empty: any)."""

    tag: str
    says: str  # what the frame means, as the fact says it
    file: str = ""
    function: str = ""
    source: str = ""
    user_only: bool = False  # only in the user's own code (a library's reshapes are not the user's)

    def matches(self, frame: Frame) -> bool:
        if self.user_only and frame.library:
            return False
        if self.source and not frame.source:
            return False
        return (
            _search(self.file, frame.file.replace("\\", "/"))
            and _search(self.function, frame.function or "")
            and _search(self.source, frame.source or "")
        )


SIGNS: tuple[Sign, ...] = (
    Sign(
        "collate",
        "the DataLoader's default collate stacking samples into a batch",
        file=r"/_utils/collate\.py$",
    ),
    Sign("dataset", "the error inside a Dataset's `__getitem__`", function=r"^__getitem__$"),
    Sign(
        "summary_tool",
        "a model-summary tool that builds its own dummy input from the size it was given",
        file=r"(?:^|/)(?:torchsummary|torchinfo|thop|ptflops|torchstat|torchscan)(?:/|\.py$)",
    ),
    Sign("tracer", "the model traced or exported with an example input", file=r"torch/(?:jit|onnx)/"),
    Sign(
        "fold",
        "a reshape that folds another axis into the batch (rows)",
        source=r"\.(?:view|reshape)\(\s*-1\s*,|\.(?:view|reshape)\([^)]*\b\w+\s*\*\s*\w+\s*,|\.flatten\(\s*0\s*,\s*1\s*\)",
        user_only=True,
    ),
    Sign(
        "flatten",
        "a flatten of the features before a layer",
        source=r"\.view\(\s*\w+(?:\.size\(0\)|\.shape\[0\])?\s*,\s*-1\s*\)|flatten\(\s*\w*\s*,?\s*1\s*\)",
        user_only=True,
    ),
    Sign(
        "squeeze",
        "a `squeeze()` without a dim, which also drops a batch of one",
        source=r"\.squeeze\(\s*\)|torch\.squeeze\(\s*[\w.]+\s*\)",
        user_only=True,
    ),
    Sign(
        "label_index",
        "class scores indexed by the labels",
        source=r"\[[^\]]*\b(?:labels?|targets?|gt_\w+|y)\s*\]|\.gather\(\s*-?\d\s*,\s*(?:labels?|targets?|y)\b",
        user_only=True,
    ),
    Sign("one_hot", "`one_hot`", source=r"one_hot\("),
    Sign(
        "normalize",
        "torchvision's Normalize transform",
        file=r"torchvision/transforms/",
        function=r"normalize",
    ),
    Sign("timm_head", "timm's `forward_head`", file=r"timm/", function=r"^forward_head$"),
    Sign("hf_load", "Hugging Face's `from_pretrained`", file=r"transformers/modeling_utils\.py$"),
    Sign("rnn", "a recurrent layer (`torch/nn/modules/rnn.py`)", file=r"torch/nn/modules/rnn\.py$"),
)
SHOWN_IN_FACTS = (
    "collate",
    "dataset",
    "summary_tool",
    "tracer",
    "fold",
    "squeeze",
    "label_index",
    "timm_head",
)


@dataclass(frozen=True)
class Seen:
    sign: Sign
    frame: Frame


def seen(parsed: ParsedError) -> list[Seen]:
    """Every sign in the traceback, innermost frame first."""
    return [Seen(s, f) for f in reversed(parsed.frames) for s in SIGNS if s.matches(f)]


def shows(parsed: ParsedError, tag: str) -> Frame | None:
    """The innermost frame that shows ``tag``, or None."""
    return next((s.frame for s in seen(parsed) if s.sign.tag == tag), None)


def user_sources(parsed: ParsedError) -> list[str]:
    """The source lines of the user's frames, innermost first."""
    return [f.source for f in reversed(parsed.frames) if not f.library and f.source]


def traceback_facts(parsed: ParsedError) -> list[str]:
    """``traceback shows ...`` facts: the user's failing line, then each sign worth stating."""
    if not parsed.frames:
        return []
    facts = []
    user = parsed.user_frame
    if user is not None:
        facts.append(f"traceback shows your code's innermost call {where(user)}")
    tags: set[str] = set()
    for s in seen(parsed):
        if s.sign.tag in SHOWN_IN_FACTS and s.sign.tag not in tags and s.frame is not user:
            tags.add(s.sign.tag)
            facts.append(f"traceback shows {s.sign.says}: {where(s.frame)}")
        elif s.sign.tag in SHOWN_IN_FACTS and s.sign.tag not in tags:
            tags.add(s.sign.tag)
            facts[0] += f" ({s.sign.says})"
    return facts


def where(frame: Frame) -> str:
    """```x = self.fc(x)``` (model.py:42, in `forward`)"""
    place = f"{os.path.basename(frame.file)}:{frame.line}" if frame.line else os.path.basename(frame.file)
    func = f", in `{frame.function}`" if frame.function and frame.function != "<module>" else ""
    return f"`{frame.source}` ({place}{func})" if frame.source else f"{place}{func}"


def _search(pattern: str, text: str) -> bool:
    return not pattern or _compiled(pattern).search(text) is not None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
