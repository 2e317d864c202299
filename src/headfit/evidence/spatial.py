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
    where = f"`{scene.module_path}`" if scene.module_path else "the model"
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
        f"`{name}` is a grayscale batch and `{scene.module_path}` takes 3 channels",
        0.9,
        scene.module_path,
        "in_channels",
        fix,
    )
    return LiveEvidence([], [cause])
