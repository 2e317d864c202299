"""The layers of a torchvision classifier container: their widths, HF220 when they do not chain, and
re-heading the last one. Shared by the classification and segmentation families (both end in a
``classifier`` Sequential whose last Linear or conv is the head).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn
from torchvision.models.googlenet import Inception
from torchvision.models.inception import InceptionE
from torchvision.models.squeezenet import Fire
from torchvision.models.video.s3d import SepInceptionBlock3D

from headfit.diagnosis import Problem
from headfit.families import _util as u
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import in_width, is_class_layer, layer_code, out_width

WIDTH_MISMATCH = "HF220"
AUX_MISMATCH = "HF222"


def classifier_chain(model: nn.Module, container_path: str) -> list[tuple[str, nn.Module]]:
    """The layers in the classifier, in forward order (Sequentials flattened)."""
    container = u.get_module(model, container_path)
    if not isinstance(container, nn.Sequential):
        return [(container_path, container)]
    layers: list[tuple[str, nn.Module]] = []
    for name in dict(container.named_children()):
        layers.extend(classifier_chain(model, f"{container_path}.{name}"))
    return layers


def concat_width(block: nn.Module) -> int | None:
    """Width of blocks that concatenate branches along channels (no single layer shows the sum)."""
    if isinstance(block, Fire):
        return block.expand1x1.out_channels + block.expand3x3.out_channels
    if isinstance(block, (Inception, SepInceptionBlock3D)):
        return _sum_widths(b for name, b in block.named_children() if name.startswith("branch"))
    if isinstance(block, InceptionE):
        leaves = (
            "branch1x1",
            "branch3x3_2a",
            "branch3x3_2b",
            "branch3x3dbl_3a",
            "branch3x3dbl_3b",
            "branch_pool",
        )
        return _sum_widths(getattr(block, name) for name in leaves)
    return None


def _sum_widths(blocks: Iterator[nn.Module]) -> int | None:
    widths = [u.last_width(b, concat_width) for b in blocks]
    return None if None in widths else sum(widths)


def width_problems(source: str, width: int | None, chain: list[tuple[str, nn.Module]]) -> list[Problem]:
    """Each layer of ``chain`` whose input width is not the width that reaches it (HF220)."""
    problems: list[Problem] = []
    origin = source
    for path, layer in chain:
        opaque = next(layer.children(), None) is not None  # a block such as DeepLab's ASPP
        expected = u.first_width(layer) if opaque else in_width(layer)
        if width is not None and expected is not None and expected != width:
            problems.append(_width_problem(path, layer, origin, width, expected))
        produced = u.last_width(layer, concat_width) if opaque else out_width(layer)
        if produced is not None:
            width, origin = produced, path
    return problems


def _width_problem(path: str, layer: nn.Module, origin: str, width: int, expected: int) -> Problem:
    attribute = in_attribute(layer)
    unit = "channels" if attribute == "in_channels" else "features"
    target = module_expr("model", path)
    if is_class_layer(layer):
        fix = f"{target} = {layer_code(layer, width, out_width(layer))}"
    elif next(layer.children(), None) is not None:
        fix = f"rebuild `{module_name(target)}` for {width} input {unit}"
    else:
        fix = f"{target} = {type(layer).__name__}({width})"
    return Problem(
        code=WIDTH_MISMATCH,
        module=path,
        attribute=attribute,
        summary=f"`{module_name(path)}` expects {expected} input {unit} but `{module_name(origin)}` produces {width}",
        facts=[f"`{module_name(origin)}` produces {width} {unit} per sample", f"`{path}.{attribute}` is {expected}"],
        fix=fix,
    )


def in_attribute(layer: nn.Module) -> str:
    """The attribute that holds a layer's input width."""
    if isinstance(layer, nn.Linear):
        return "in_features"
    if isinstance(layer, nn.modules.conv._ConvNd):
        return "in_channels"
    if isinstance(layer, nn.LayerNorm):
        return "normalized_shape"
    return "num_features"


def replace_head(
    model: nn.Module, path: str, num_classes: int, init: u.Init | None, keep: list[int] | None
) -> None:
    """Put a layer like the one at ``path`` with ``num_classes`` outputs there (``keep``: rows to copy)."""
    old = u.get_module(model, path)
    if isinstance(old, nn.Linear):
        new = u.new_linear_like(old, num_classes)
    else:
        new = u.new_conv_like(old, num_classes)
    if hasattr(old, "stddev"):  # Inception's init reads it
        new.stddev = old.stddev
    if init is not None:
        init(new)
    if keep is not None:
        u.copy_rows(new, old, keep)
    u.set_module(model, path, new)
