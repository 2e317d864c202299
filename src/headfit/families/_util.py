"""Helpers that several families share: find, build and swap head layers without touching the rest.

New layers are always created on the old layer's device and dtype and keep its ``bias`` flag, so a
re-headed model on ``meta``, CUDA or half precision stays what it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from headfit.errors import UsageError
from headfit.nnutil import in_width, out_width

Init = Callable[[nn.Module], None]


def get_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at ``path`` (a name from ``model.named_modules()``; "" is the model itself)."""
    return model.get_submodule(path) if path else model


def has_module(model: nn.Module, path: str) -> bool:
    try:
        get_module(model, path)
    except AttributeError:
        return False
    return True


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` at ``path``, in a Sequential by index or in a Module by attribute name."""
    parent_path, _, name = path.rpartition(".")

    parent = get_module(model, parent_path)
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and name.lstrip("-").isdigit():
        parent[int(name)] = new
    else:
        setattr(parent, name, new)


def last_linear(module: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` in ``module`` in registration order, with its path, or None."""
    found = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            found = (name, sub)
    return found


def _factory(old: nn.Module) -> dict[str, object]:
    weight = old.weight
    return {"device": weight.device, "dtype": weight.dtype}


def new_linear_like(old: nn.Linear, out_features: int, init: Init | None = None) -> nn.Linear:
    """A Linear with ``old``'s in_features, bias flag, device and dtype and ``out_features`` outputs."""
    new = nn.Linear(old.in_features, out_features, bias=old.bias is not None, **_factory(old))
    if init is not None:
        init(new)
    return new


def new_conv_like(old: nn.Conv2d | nn.Conv3d, out_channels: int, init: Init | None = None) -> nn.Module:
    """A conv of ``old``'s type, geometry, bias flag, device and dtype with ``out_channels`` outputs."""
    if old.groups != 1:
        raise UsageError(f"cannot re-head a grouped convolution (groups={old.groups})")
    new = type(old)(
        old.in_channels,
        out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        **_factory(old),
    )
    if init is not None:
        init(new)
    return new


def new_layer_like(old: nn.Module, outputs: int) -> nn.Module:
    """The same kind of layer (Linear or conv) with ``outputs`` outputs, PyTorch's default init and
    ``old``'s train mode: what timm's ``reset_classifier`` makes."""
    new = new_linear_like(old, outputs) if isinstance(old, nn.Linear) else new_conv_like(old, outputs)
    return new.train(old.training)


def normal_init(std: float) -> Init:
    """weight ~ N(0, std), bias 0 (torchvision's VGG/MobileNet/RegNet/SqueezeNet classifier init)."""

    def init(layer: nn.Module) -> None:
        nn.init.normal_(layer.weight, 0.0, std)
        _zero_bias(layer)

    return init


def trunc_normal_init(std: float, a: float = -2.0, b: float = 2.0, zero_bias: bool = True) -> Init:
    """weight ~ truncated N(0, std) on [a, b], bias 0 (ConvNeXt/Swin: std 0.02).

    GoogLeNet and Inception v3 leave the bias at PyTorch's default: ``zero_bias=False``.
    """

    def init(layer: nn.Module) -> None:
        nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=a, b=b)
        if zero_bias:
            _zero_bias(layer)

    return init


def zeros_init(layer: nn.Module) -> None:
    """weight and bias 0 (torchvision ViT's ``heads.head``)."""
    nn.init.zeros_(layer.weight)
    _zero_bias(layer)


def uniform_init(layer: nn.Module) -> None:
    """weight ~ U(+-1/sqrt(out_features)), bias 0 (torchvision EfficientNet's classifier)."""
    bound = 1.0 / layer.weight.shape[0] ** 0.5
    nn.init.uniform_(layer.weight, -bound, bound)
    _zero_bias(layer)


def kaiming_uniform_init(layer: nn.Module) -> None:
    """kaiming_uniform (fan_out, sigmoid gain), bias 0 (torchvision MNASNet's classifier)."""
    nn.init.kaiming_uniform_(layer.weight, mode="fan_out", nonlinearity="sigmoid")
    _zero_bias(layer)


def zero_bias_init(layer: nn.Module) -> None:
    """PyTorch's default weight init with the bias set to 0 (torchvision DenseNet's classifier)."""
    _zero_bias(layer)


def _zero_bias(layer: nn.Module) -> None:
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def copy_rows(new: nn.Module, old: nn.Module, rows: Sequence[int]) -> None:
    """Start output ``i`` of ``new`` from output ``rows[i]`` of ``old`` (weights and bias).

    Works for Linear rows and conv output channels alike (dim 0 of weight and bias). Skipped on the
    meta device, where there are no values to copy.
    """
    if new.weight.is_meta or old.weight.is_meta:
        return
    index = torch.as_tensor(list(rows), dtype=torch.long, device=old.weight.device)
    with torch.no_grad():
        new.weight[: len(rows)].copy_(old.weight.index_select(0, index))
        if new.bias is not None and old.bias is not None:
            new.bias[: len(rows)].copy_(old.bias.index_select(0, index))


def check_keep(keep: Sequence[int] | None, num_classes: int, source_outputs: int) -> list[int] | None:
    """Validate ``keep`` (source-head indices, one per new class); raise UsageError in one paragraph."""
    if keep is None:
        return None
    rows = [int(k) for k in keep]
    if len(rows) != num_classes:
        raise UsageError(
            f"`keep` lists {len(rows)} source classes but the new head has {num_classes} classes: "
            "give one source index per new class, in the new order"
        )
    bad = [k for k in rows if not 0 <= k < source_outputs]
    if bad:
        raise UsageError(
            f"`keep` index {bad[0]} is outside the source head, which has {source_outputs} outputs "
            f"(valid indices are 0..{source_outputs - 1})"
        )
    return rows


def check_num_classes(num_classes: int) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UsageError(f"`num_classes` must be a whole number >= 1, got {num_classes!r}")
    return num_classes


def first_width(module: nn.Module) -> int | None:
    """The width the first layer (in registration order) of ``module`` expects."""
    for sub in module.modules():
        width = in_width(sub)
        if width is not None:
            return width
    return None


def last_width(module: nn.Module, concat: Callable[[nn.Module], int | None] | None = None) -> int | None:
    """The width the last layer of ``module`` produces, reading blocks from the end.

    ``concat(block)`` may answer for blocks that concatenate branches (Inception, Fire), whose width is
    a sum that no single layer shows.
    """
    if concat is not None:
        width = concat(module)
        if width is not None:
            return width
    children = list(module.children())
    if not children:
        return out_width(module)
    for child in reversed(children):
        width = last_width(child, concat)
        if width is not None:
            return width
    return None
