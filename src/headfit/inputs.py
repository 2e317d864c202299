"""Inputs of a shape trace: the ``--input`` syntax and what ``check``/``sizes`` make of any input.

``InputSpec`` parses ``2x3x800x1333`` (a batched tensor) or ``[3x800x1333,3x600x900]`` (a list of
images, as torchvision detection models take; ``[3x800x1333]x2`` repeats the list).
``positional_inputs`` turns whatever a caller passed (specs, tensors, lists, tuples) into the
positional arguments of a forward; ``input_hw`` and ``resized`` read and vary their height and width.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headfit.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

_MAX_BYTES = 2**63  # torch sizes storage in int64 bytes
_MAX_ITEMSIZE = 8  # the widest dtype a spec can make (float64, int64)
_MAX_DIMS = 64  # more is a typo; torch's own kernels stop at 25 or so
_MAX_IMAGES = 4096  # a list input longer than this is a typo for a batch (`[3x80x80]x99999999`)
_MAX_DIGITS = 19  # no dimension past 2^63 has more; int() itself refuses 4,300 digits
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
                repeat = _repeat(m.group("repeat") or "1", len(items), text)
                return cls(tuple(_dims(i) for i in items) * repeat, is_list=True)
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


def _repeat(digits: str, items: int, text: str) -> int:
    """The ``xN`` of ``[...]xN``, bounded before the list is made: a typo must not fill the memory."""
    repeat = int(digits) if len(digits) <= _MAX_DIGITS else _MAX_IMAGES + 1
    if repeat < 1:
        raise UsageError(
            f"the input spec {text!r} repeats its list {repeat} times: the repeat must be at least 1, "
            "e.g. `[3x800x1333]x2`"
        )
    if repeat * items > _MAX_IMAGES:
        shown = f"{repeat * items:,}" if len(digits) <= _MAX_DIGITS else "more than 10^19"
        raise UsageError(
            f"the input spec {text!r} asks for {shown} images: a list input takes at most "
            f"{_MAX_IMAGES:,}. For many images of one size, use a batched tensor, e.g. `8x3x800x1333`"
        )
    return repeat


def _dims(text: str) -> tuple[int, ...]:
    """The dimensions of one shape, bounded so that torch can size its storage (never an overflow)."""
    words = text.split("x")
    if len(words) > _MAX_DIMS:
        raise UsageError(
            f"the input shape {_cut(text)!r} has {len(words):,} dimensions: a tensor here takes at most "
            f"{_MAX_DIMS}, e.g. `2x3x224x224`"
        )
    if any(len(w.lstrip("0")) > _MAX_DIGITS for w in words):
        raise UsageError(
            f"the input shape {_cut(text)!r} has a dimension of more than {_MAX_DIGITS} digits, more than "
            "a tensor can hold (2^63 bytes): use smaller dimensions, e.g. `2x3x224x224`"
        )
    dims = tuple(int(w) for w in words)
    if any(d <= 0 for d in dims):
        raise UsageError(
            f"the input shape {text!r} has a dimension of 0: every dimension must be a positive whole "
            "number, e.g. `2x3x224x224`"
        )
    elements = math.prod(dims)
    if elements * _MAX_ITEMSIZE >= _MAX_BYTES:
        raise UsageError(
            f"the input shape {text!r} has {elements:,} elements ({elements * _MAX_ITEMSIZE:,} bytes at 8 "
            "per element), more than a tensor can hold (2^63 bytes): use smaller dimensions, "
            "e.g. `2x3x224x224`"
        )
    return dims


def _cut(text: str, limit: int = 60) -> str:
    """A long spec shown by its start: the paragraph names it without repeating 5,000 characters."""
    return text if len(text) <= limit else text[:limit] + "..."


def float_dtype(model: nn.Module) -> Any:
    """The dtype of the model's floating parameters (inputs made from specs follow it: a half model
    takes half inputs)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def positional_inputs(
    inputs: Any, defaults: list[InputSpec] | None = None, float_dtype: Any = None
) -> tuple[tuple[Any, ...], list[str]]:
    """The positional arguments of the trace (meta tensors or the user's tensors) and how to show them.

    Floating tensors made from specs take ``float_dtype`` when given; the user's tensors keep theirs.
    """
    if defaults is not None:
        inputs = tuple(defaults)
    if isinstance(inputs, list) and inputs and all(isinstance(i, (str, InputSpec)) for i in inputs):
        inputs = tuple(inputs)
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    args = tuple(_one_input(i, float_dtype) for i in inputs)
    return args, [_shown(i) for i in args]


def _one_input(value: Any, float_dtype: Any) -> Any:
    import torch

    if isinstance(value, str):
        value = InputSpec.parse(value)
    if isinstance(value, InputSpec):
        made = value.make("meta")
        if float_dtype is None or not value.dtype.startswith("float"):
            return made
        return [t.to(float_dtype) for t in made] if value.is_list else made.to(float_dtype)
    if isinstance(value, (torch.Tensor, list, dict)) or _is_tuple_of_tensors(value):
        return value
    raise UsageError(
        f"cannot trace with an input of type {type(value).__name__}. Give a spec string such as "
        "`2x3x224x224` or `[3x800x1333,3x600x900]`, an InputSpec, a tensor, a list of image tensors, "
        "or a tuple of these for several positional inputs."
    )


def _is_tuple_of_tensors(value: Any) -> bool:
    import torch

    return isinstance(value, tuple) and all(isinstance(v, torch.Tensor) for v in value)


def _shown(value: Any) -> str:
    """One positional input in ``--input`` syntax: ``2x3x224x224`` or ``[3x800x1333,3x600x900]``."""
    import torch

    if isinstance(value, torch.Tensor):
        return shape_text(value.shape)
    if isinstance(value, (list, tuple)) and all(isinstance(v, torch.Tensor) for v in value):
        return "[" + ",".join(shape_text(v.shape) for v in value) + "]"
    return type(value).__name__


def shape_text(shape: Sequence[int], style: str = "x") -> str:
    """A shape as ``2x3x224x224`` (``style="x"``, the ``--input`` syntax) or ``[2, 3, 224, 224]`` (``"list"``)."""
    if style == "list":
        return "[" + ", ".join(map(str, shape)) + "]"
    return "x".join(map(str, shape))


def input_hw(args: tuple[Any, ...]) -> tuple[int, int] | None:
    """(H, W) of the first image-like input: a tensor (or list of tensors) with >= 3 dimensions."""
    from torch.utils._pytree import tree_leaves

    for leaf in tree_leaves(args):
        shape = getattr(leaf, "shape", None)
        if shape is not None and len(shape) >= 3:
            return int(shape[-2]), int(shape[-1])
    return None


def resized(args: tuple[Any, ...], height: int, width: int) -> tuple[Any, ...]:
    """The same inputs with H x W replaced in every image-like tensor (meta: nothing is allocated)."""
    import torch
    from torch.utils._pytree import tree_map

    def resize(leaf: Any) -> Any:
        if isinstance(leaf, torch.Tensor) and leaf.dim() >= 3:
            return torch.empty((*leaf.shape[:-2], height, width), dtype=leaf.dtype, device="meta")
        return leaf

    return tree_map(resize, args)
