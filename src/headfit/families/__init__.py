"""Model families: one module each, all answering the protocol in ``base.py``."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from headfit.families.base import (
    AdaptSummary,
    Evidence,
    Family,
    HeadInfo,
    SizeRule,
    register_family,
    registered_families,
)
from headfit.smoke import SmokeBatch

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "AdaptSummary",
    "Evidence",
    "Family",
    "HeadInfo",
    "SizeRule",
    "SmokeBatch",
    "family_for",
    "register_family",
    "all_families",
]

_loaded = False


def all_families() -> list[Family]:
    """Every registered family, most specific first (imports each family module once; ``base`` and the
    ``_``-prefixed helper modules hold no family)."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base" and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return registered_families()


def family_for(model: nn.Module) -> Family:
    """The first family that recognises ``model``; the generic fallback recognises everything."""
    for family in all_families():
        if family.recognises(model):
            return family
    raise LookupError(f"no headfit family recognises {type(model).__name__}")
