"""Input specs for a shape trace: ``2x3x800x1333`` (a batched tensor) or ``[3x800x1333,3x600x900]``
(a list of images, as torchvision detection models take; ``[3x800x1333]x2`` repeats the list).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headfit.errors import UsageError

if TYPE_CHECKING:
    import torch

_MAX_ELEMENTS = 2**63  # torch indexes tensors with int64
_DIMS = re.compile(r"^\d+(x\d+)*$")
_LIST = re.compile(r"^\[(?P<items>[^\[\]]*)\](?:x(?P<repeat>\d+))?$")


@dataclass(frozen=True)
class InputSpec:
    """One positional input of a model: a tensor shape, or a list of tensor shapes."""

    shapes: tuple[tuple[int, ...], ...]
    is_list: bool = False
    dtype: str = "float32"  # a torch dtype name: "float32", "int64" (token ids), ...

    @classmethod
    def batch(cls, *dims: int, dtype: str = "float32") -> InputSpec:
        return cls((tuple(dims),), is_list=False, dtype=dtype)

    @classmethod
    def images(cls, *shapes: tuple[int, ...]) -> InputSpec:
        return cls(tuple(tuple(s) for s in shapes), is_list=True)

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """Parse the ``--input`` syntax; raise UsageError with an example on anything else."""
        spec = text.strip().replace(" ", "").replace("X", "x").replace("*", "x")
        if _DIMS.match(spec):
            return cls((_dims(spec),))
        m = _LIST.match(spec)
        if m and m.group("items"):
            items = m.group("items").split(",")
            if all(_DIMS.match(i) for i in items):
                shapes = tuple(_dims(i) for i in items) * int(m.group("repeat") or 1)
                if shapes:
                    return cls(shapes, is_list=True)
        raise UsageError(
            f"cannot read the input spec {text!r}. Write a batched tensor as N x C x H x W, "
            "e.g. `2x3x224x224`, or a list of images as `[3x800x1333,3x600x900]` (or `[3x800x1333]x2` "
            "for two of the same size); every dimension must be a positive whole number."
        )

    def make(self, device: str | torch.device = "meta") -> Any:
        """Tensors of this spec on ``device`` (meta by default: no memory)."""
        import torch

        dtype = getattr(torch, self.dtype)
        if dtype.is_floating_point:
            tensors = [torch.empty(s, device=device, dtype=dtype) for s in self.shapes]
        else:
            tensors = [torch.zeros(s, device=device, dtype=dtype) for s in self.shapes]
        return tensors if self.is_list else tensors[0]

    def __str__(self) -> str:
        text = ",".join("x".join(map(str, s)) for s in self.shapes)
        return f"[{text}]" if self.is_list else text


def _dims(text: str) -> tuple[int, ...]:
    dims = tuple(int(d) for d in text.split("x"))
    if any(d <= 0 for d in dims):
        raise UsageError(
            f"the input shape {text!r} has a dimension of 0: every dimension must be a positive whole "
            "number, e.g. `2x3x224x224`"
        )
    if math.prod(dims) >= _MAX_ELEMENTS:
        raise UsageError(
            f"the input shape {text!r} has {math.prod(dims):,} elements, more than a tensor can hold "
            "(2^63): use smaller dimensions, e.g. `2x3x224x224`"
        )
    return dims
