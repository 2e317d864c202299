"""Small arithmetic and shape-text helpers shared by the explain rules (no torch)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

_INT = re.compile(r"-?\d+")


def fmt(n: int | float) -> str:
    """1234567 -> '1,234,567'; floats keep up to 4 significant decimals."""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.4g}"
    return f"{int(n):,}"


def prod(dims: Iterable[int]) -> int:
    return math.prod(dims)


def product_expr(dims: Sequence[int]) -> str:
    """[2, 91, 168, 96] -> '2*91*168*96 = 2,935,296' (a single dim is just its value)."""
    if len(dims) == 1:
        return fmt(dims[0])
    return f"{'*'.join(str(d) for d in dims)} = {fmt(prod(dims))}"


def parse_ints(text: str) -> list[int]:
    """'[2, -1, 91, 168, 96]' or 'torch.Size([1000, 512])' -> [2, -1, 91, 168, 96] / [1000, 512]."""
    return [int(x) for x in _INT.findall(text)]


def shape_str(dims: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
