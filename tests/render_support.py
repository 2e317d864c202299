"""Render through ``headfit.render.render`` into text at a fixed width, as rich's own tests do."""

from __future__ import annotations

from io import StringIO
from typing import Any

from rich.console import Console

from headfit.render import render

WIDTH = 100


def rendered(obj: Any, width: int = WIDTH) -> str:
    """The text ``headfit`` prints for ``obj`` on a ``width``-column terminal without colours."""
    out = StringIO()
    Console(width=width, file=out, color_system=None, highlight=False, soft_wrap=False).print(render(obj))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"
