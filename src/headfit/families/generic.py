"""The fallback family: any nn.Module. (Minimal for now; the full structural head finder comes later.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headfit.families.base import Family, register_family

if TYPE_CHECKING:
    from torch import nn


@register_family
class GenericFamily(Family):
    name = "generic"
    priority = 1000

    def recognises(self, model: nn.Module) -> bool:
        return True
