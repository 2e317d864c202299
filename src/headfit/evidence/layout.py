"""Layout evidence: the tensor the user gave the model is laid out for another convention (channels-last
[N, H, W, 3], one image without its batch dim, one image tensor where a detector takes a list).

The layer evidence (``layer.py``) already says this with ``x``; here the fix names the user's own
variable, read from the model's forward frame, and the model's family judges its own input convention.
"""

from __future__ import annotations

import torch
from torch import nn

from headfit.diagnosis import Cause
from headfit.evidence.base import LiveEvidence, finder, name_of
from headfit.evidence.layer import channels_last_fix, is_channels_last
from headfit.families import family_for
from headfit.modulepath import module_name
from headfit.scene import Scene, failing_method_frame, forward_frame, frame_inputs

LAYOUT_CODE = "HF137"  # the input's layout is not the model's (as the message rule for detectors names it)


@finder(code=LAYOUT_CODE, priority=20)
def model_images(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """What the user passed as the model's first argument, judged by the model's family."""
    if scene.model is None:
        return None
    root = forward_frame(scene, scene.model)
    if root is None:
        return None
    code = root.f_code
    names = code.co_varnames[1 : code.co_argcount]
    if not names:
        return None
    images = root.f_locals.get(names[0])
    found = family_for(scene.model).check_images(
        scene.model, images, name=name_of(scene, images, names[0]) or names[0]
    )
    if not found.causes:
        return None
    return LiveEvidence(found.facts, found.causes, settles=True)


@finder(code=None, priority=61)
def user_input_layout(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """A channels-last image or a sample without its batch dim reached the failing conv or BatchNorm
    unchanged from the user's own variable: the permute / unsqueeze names that variable."""
    module, path = scene.module, scene.module_path
    inputs = frame_inputs(failing_method_frame(scene))
    if module is None or not inputs:
        return None
    arrived = list(inputs[0][1].shape)
    name, given = _model_input(scene)
    if name is None:
        return None
    if isinstance(module, nn.modules.conv._ConvNd) and _is_channels_last(module, arrived):
        if list(given.shape) != arrived:
            return None
        summary = f"`{name}` {list(given.shape)} is channels-last; `{module_name(path)}` reads its channels from dim 1"
        return LiveEvidence([], [Cause(summary, 0.96, path, None, channels_last_fix(arrived, name))])
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and _unbatched(module, given, arrived):
        summary = f"`{name}` {list(given.shape)} is one sample without its batch dim"
        return LiveEvidence([], [Cause(summary, 0.96, path, None, f"{name} = {name}.unsqueeze(0)  # add the batch dim")])
    return None


def _is_channels_last(conv: nn.modules.conv._ConvNd, shape: list[int]) -> bool:
    channel_dim = 1 if len(shape) == len(conv.kernel_size) + 2 else 0
    return shape[channel_dim] != conv.in_channels and is_channels_last(shape, conv.in_channels)


def _unbatched(bn: nn.modules.batchnorm._BatchNorm, given: torch.Tensor, arrived: list[int]) -> bool:
    """The user's input lacks the batch dim the BatchNorm needs, and the map arrived with that rank too."""
    batched = {"BatchNorm2d": 4, "BatchNorm3d": 5}.get(type(bn).__name__)
    return batched is not None and given.dim() == len(arrived) == batched - 1 and arrived[0] == bn.num_features


def _model_input(scene: Scene) -> tuple[str | None, torch.Tensor | None]:
    """The user's name and value of the model's first tensor argument."""
    inputs = frame_inputs(forward_frame(scene, scene.model))
    if not inputs:
        return None, None
    value = inputs[0][1]
    return name_of(scene, value, None), value
