"""Reading ``nn.Module`` trees and writing pasteable code for them: the neutral layer below the families.

Module paths are the names of ``model.named_modules()`` ("" is the model itself); ``is_within`` is the one
containment test on them. Widths are what one layer takes and produces (Linear features, conv channels,
norm features); ``layer_code`` writes the Python of a fix (``headfit.modulepath`` names the modules).
"""

from __future__ import annotations

from typing import Any

from torch import nn


def is_within(path: str, other: str) -> bool:
    """Whether module ``path`` is ``other`` or inside it, on dot boundaries ("" is the whole model):
    ``head.cls`` is within ``head`` and ``""``; ``head_dist`` is not within ``head``."""
    return other == "" or path == other or path.startswith(other + ".")


def are_related(path: str, other: str) -> bool:
    """Whether one of two module paths contains the other (a failure in, above or below a module)."""
    return is_within(path, other) or is_within(other, path)


def layer_code(layer: nn.Module, in_width: int, out_width: int) -> str:
    """Constructor code for a layer like ``layer`` with other widths, keeping everything else that
    shapes its output (stride, padding, dilation, groups, padding mode, bias): ``nn.Linear(2048, 10)``,
    ``nn.Conv2d(19, 16, kernel_size=3, stride=2, padding=1, padding_mode='reflect')``."""
    bias = [] if getattr(layer, "bias", None) is not None else ["bias=False"]
    if isinstance(layer, nn.Linear):
        return f"nn.Linear({', '.join([str(in_width), str(out_width), *bias])})"
    args = [str(in_width), str(out_width), f"kernel_size={_compact(layer.kernel_size)}"]
    args += _conv_geometry(layer, in_width) + bias
    return f"nn.{type(layer).__name__}({', '.join(args)})"


def _conv_geometry(conv: nn.Module, in_width: int) -> list[str]:
    """The non-default arguments of a conv; a depthwise conv stays depthwise at its new width."""
    args = []
    for name, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1)):
        value = getattr(conv, name, default)
        if isinstance(value, str) or _compact(value) != default:
            args.append(
                f"{name}={_compact(value)!r}" if isinstance(value, str) else f"{name}={_compact(value)}"
            )
    if conv.groups != 1:
        depthwise = conv.groups == conv.in_channels
        args.append(f"groups={in_width if depthwise else conv.groups}")
    if conv.padding_mode != "zeros":
        args.append(f"padding_mode={conv.padding_mode!r}")
    return args


def _compact(value: Any) -> Any:
    """``(3, 3)`` -> ``3``; a tuple that differs per dimension stays a tuple."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return value[0]
    return value


def is_class_layer(module: nn.Module) -> bool:
    """A layer that can produce classes: a Linear or a convolution (any dimension, transposed too)."""
    return isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))


def out_width(layer: nn.Module) -> int | None:
    """Features or channels a single layer produces (Linear, ConvNd, a norm), else None."""
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.modules.conv._ConvNd):
        return layer.out_channels
    return norm_width(layer)


def in_width(layer: nn.Module) -> int | None:
    """Features or channels a single layer expects (Linear, ConvNd, a norm), else None."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if isinstance(layer, nn.modules.conv._ConvNd):
        return layer.in_channels
    return norm_width(layer)


def norm_width(layer: nn.Module) -> int | None:
    """Features a norm layer normalises (BatchNorm, InstanceNorm, LayerNorm's last dim, GroupNorm)."""
    if isinstance(layer, nn.modules.batchnorm._NormBase):
        return layer.num_features
    if isinstance(layer, nn.LayerNorm):
        return layer.normalized_shape[-1]
    if isinstance(layer, nn.GroupNorm):
        return layer.num_channels
    return None
