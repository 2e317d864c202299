"""Spatial evidence: a skip connection joining feature maps of different sizes (an input size the
downsampling does not divide), and a grey (1-channel) batch reaching an RGB stem."""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from headfit.diagnosis import Cause
from headfit.evidence.base import LiveEvidence, finder, name_of
from headfit.explain.arith import shape_str
from headfit.modulepath import module_name
from headfit.scene import Scene, failing_method_frame, forward_frame, frame_inputs
from headfit.trace import meta_replica, trace

SKIP_CODE = "HF134"  # a skip connection joins feature maps of different sizes


_CAT_SIZES = re.compile(r"Expected size (\d+) but got size (\d+) for tensor number (\d+)")


@finder(code=SKIP_CODE, priority=60)
def skip_connection(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    match = _CAT_SIZES.search(str(exc))
    if not match or scene.model is None:
        return None
    expected, got = int(match.group(1)), int(match.group(2))
    frame = scene.frames[-1]
    maps = {n: v for n, v in frame.f_locals.items() if isinstance(v, torch.Tensor) and v.dim() >= 3}
    a = next((n for n, v in maps.items() if expected in v.shape[2:]), None)
    b = next((n for n, v in maps.items() if n != a and got in v.shape[2:]), None)
    if a is None or b is None:
        return None
    facts = [
        f"`{a}` {shape_str(list(maps[a].shape))} and `{b}` {shape_str(list(maps[b].shape))} meet in `torch.cat` "
        f"in `{frame.f_code.co_name}`: {expected} != {got}"
    ]
    where = f"`{module_name(scene.module_path)}`" if scene.module_path else "the model"
    image, size = _working_size(scene)
    if size is not None:
        facts.append(
            f"the input {shape_str(list(image.shape))} loses a pixel on the way down; {size} would work"
        )
        fix = f"resize or pad the input to {size} (H and W a multiple of the total downsampling)"
    else:
        fix = "pad or crop one of the two tensors to the other's size before `torch.cat`"
    cause = Cause(
        f"the skip connection in {where} joins feature maps of different sizes",
        0.85,
        scene.module_path,
        None,
        fix,
    )
    return LiveEvidence(facts, [cause])


def _working_size(scene: Scene) -> tuple[Any, str | None]:
    """The smallest H, W at least the input's that a shape trace accepts (tried for small models)."""
    root_frame = forward_frame(scene, scene.model)
    inputs = frame_inputs(root_frame)
    if not inputs or sum(p.numel() for p in scene.model.parameters()) > 50_000_000:
        return None, None
    image = inputs[0][1]
    if image.dim() != 4:
        return image, None
    n, c, h, w = image.shape
    replica = meta_replica(scene.model)
    for multiple in (2, 4, 8, 16, 32, 64):
        size = (math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)
        if not trace(scene.model, (torch.empty(n, c, *size, device="meta"),), replica=replica).failed:
            return image, f"{n}x{c}x{size[0]}x{size[1]}"
    return image, None


@finder(code=None, priority=61)
def grey_input(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    module = scene.module
    if not isinstance(module, nn.modules.conv._ConvNd) or module.in_channels != 3:
        return None
    inputs = frame_inputs(failing_method_frame(scene))
    if not inputs or inputs[0][1].dim() < 3 or inputs[0][1].shape[-3] != 1:
        return None
    root_frame = forward_frame(scene, scene.model)
    model_inputs = frame_inputs(root_frame)
    name = name_of(scene, model_inputs[0][1], None) if model_inputs else None
    if name is None:
        return None
    fix = f"{name} = {name}.expand(-1, 3, -1, -1)  # repeat the grey channel for the RGB stem"
    cause = Cause(
        f"`{name}` is a grayscale batch and `{module_name(scene.module_path)}` takes 3 channels",
        0.9,
        scene.module_path,
        "in_channels",
        fix,
    )
    return LiveEvidence([], [cause])


WINDOW_LIMIT = 4096  # the largest side the minimum-input search tries


@finder(code=None, priority=60)
def window_too_large(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """A pooling or conv window larger than the map that reached it: the smallest input side the whole
    chain accepts (every downsampling before the layer and its window), found by meta-device traces."""
    module, path = scene.module, scene.module_path
    inputs = frame_inputs(failing_method_frame(scene))
    if not isinstance(module, _WINDOWED) or not inputs or scene.model is None or inputs[0][1].dim() != 4:
        return None
    arrived = list(inputs[0][1].shape)
    if not _window_exceeds(module, arrived[2:]):
        return None
    channels = _first_channels(scene.model)
    if channels is None or sum(p.numel() for p in scene.model.parameters()) > 50_000_000:
        return None
    side = minimum_input_side(scene.model, channels)
    if side is None:
        return None
    facts = [
        f"the smallest input `{scene.prefix}` accepts, with every downsampling before `{module_name(path)}` and its window, "
        f"is {side}x{side} (meta-device traces: {side}x{side} runs, {side - 1}x{side - 1} fails)"
    ]
    fix = f"transforms.Resize(({side}, {side}))  # or x = torch.nn.functional.interpolate(x, size=({side}, {side}))"
    cause = Cause(
        f"the input is too small for the downsampling before `{module_name(path)}` and its window: "
        f"it needs at least {side}x{side}",
        0.85,
        path,
        "kernel_size",
        fix,
    )
    return LiveEvidence(facts, [cause])


_WINDOWED = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.conv._ConvNd)


def _window_exceeds(module: nn.Module, spatial: list[int]) -> bool:
    """Whether ``module``'s window (kernel and dilation) reaches past the padded map."""
    n = len(spatial)

    def per_dim(value: Any) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n

    if isinstance(getattr(module, "padding", 0), str):
        return False  # "same"/"valid" convs: torch's own message says what it needs
    kernel, padding = per_dim(module.kernel_size), per_dim(getattr(module, "padding", 0))
    dilation = per_dim(getattr(module, "dilation", 1))
    reach = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=False)]
    return any(s + 2 * p < r for s, p, r in zip(spatial, padding, reach, strict=False))


def _first_channels(model: nn.Module) -> int | None:
    """The input channels of the model's first conv, for a probe input."""
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return first.in_channels if first is not None else None


def minimum_input_side(model: nn.Module, channels: int, batch: int = 2) -> int | None:
    """The smallest square input side that a shape trace of ``model`` accepts: doubling until one runs,
    then bisecting (a chain of windows and strides accepts every side from its minimum up)."""
    replica = meta_replica(model)

    def runs(side: int) -> bool:
        probe = torch.empty(batch, channels, side, side, device="meta")
        return not trace(model, (probe,), replica=replica).failed

    high = 1
    while not runs(high):
        high *= 2
        if high > WINDOW_LIMIT:
            return None
    low = high // 2  # fails (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if runs(middle) else (middle, high)
    return high
