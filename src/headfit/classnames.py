"""Class names of pretrained heads, and turning ``person,car`` into source-head indices.

The names come from torchvision's weights metadata (``Weights.meta["categories"]``), which ships with
torchvision and needs no download: COCO (91 entries, ``__background__`` and ten ``N/A`` holes
included), COCO person keypoints (2), VOC (21), ImageNet-1k (1000) and Kinetics-400 (400). The index of
a name in that list is its row in the pretrained head, in the head's own numbering.
"""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path

from headfit.errors import UsageError

_PLACEHOLDERS = {"N/A", "__background__", "no person"}


def read_name_list(text: str) -> list[str]:
    """``a,b,c`` or ``@file`` (names one per line or comma-separated) as a list of stripped names."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise UsageError(f"the name list file {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8").replace("\n", ",")
    names = [n.strip() for n in text.split(",")]
    return [n for n in names if n]


def source_categories(head_outputs: int, spec: str | None = None) -> list[str] | None:
    """The pretrained class names of a head with ``head_outputs`` rows, or None when unknown.

    A ``torchvision:NAME`` spec picks that builder's own weights; otherwise the torchvision dataset with
    exactly that many categories is used (the counts are distinct: 2, 21, 91, 400, 1000).
    """
    if spec and spec.startswith("torchvision:"):
        names = _builder_categories(spec.partition(":")[2])
        if names is not None and len(names) == head_outputs:
            return names
    return _categories_by_count().get(head_outputs)


def _builder_categories(name: str) -> list[str] | None:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    for member in weights:
        if member.meta.get("categories"):
            return list(member.meta["categories"])
    return None


@cache
def _categories_by_count() -> dict[int, list[str]]:
    import torchvision

    found: dict[int, list[str]] = {}
    for name in torchvision.models.list_models():
        for member in torchvision.models.get_model_weights(name):
            names = member.meta.get("categories")
            if names:
                found.setdefault(len(names), list(names))
    return found


def resolve_keep(
    items: list[str | int], categories: list[str] | None, head_outputs: int, counts_background: bool
) -> list[int]:
    """Source-head indices for ids (``3``) or names (``car``); one clear paragraph on anything wrong."""
    rows = [_resolve_one(item, categories, head_outputs) for item in items]
    if counts_background and 0 in rows:
        raise UsageError(
            "`keep_classes` lists index 0, which is the background row of this head; list only object "
            "classes (the new head's background row starts from the pretrained background row anyway)"
        )
    return rows


def _resolve_one(item: str | int, categories: list[str] | None, head_outputs: int) -> int:
    text = str(item).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < head_outputs:
            raise UsageError(
                f"class id {index} is outside the pretrained head, which has {head_outputs} outputs "
                f"(valid ids are 0..{head_outputs - 1})"
            )
        return index
    if categories is None:
        raise UsageError(
            f"cannot look up the class name {text!r}: headfit does not know the names of this "
            f"{head_outputs}-output head. Give class ids (0..{head_outputs - 1}) instead"
        )
    return _index_of(text, categories)


def _index_of(name: str, categories: list[str]) -> int:
    wanted = _normal(name)
    hits = [i for i, c in enumerate(categories) if _normal(c) == wanted and c not in _PLACEHOLDERS]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        ids = ", ".join(map(str, hits))
        raise UsageError(
            f"the class name {name!r} is ambiguous in this head (ids {ids}); give the id instead"
        )
    real = [c for c in categories if c not in _PLACEHOLDERS]
    close = difflib.get_close_matches(name, real, n=4, cutoff=0.5)
    hint = f" Close matches: {', '.join(repr(c) for c in close)}." if close else ""
    raise UsageError(
        f"the pretrained head has no class named {name!r}.{hint} Give one of its {len(real)} class names"
        + (f" (e.g. {real[0]!r})" if real else "")
        + f" or a class id (0..{len(categories) - 1})"
    )


def _normal(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())
