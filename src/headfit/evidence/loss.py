"""Loss evidence: what a loss function got, read from its frame (``input`` and ``target``).

A model's whole output (a namedtuple with auxiliary logits, a segmentation dict) instead of its logits; a
batch the model folded into fewer rows (a hard-coded ``view(-1, F)``); class labels past the logits; a
target one dimension away from the output. Losses that a target-taking model computes in its own
forward (torchvision's detectors) are its family's business (``Family.check_targets``).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.nn.modules.loss import _Loss

from headfit.diagnosis import Cause
from headfit.evidence.base import LiveEvidence, finder, message_is_about, name_of
from headfit.explain.arith import fmt, shape_str
from headfit.families import family_for
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import in_width, layer_code
from headfit.scene import Scene, names_in
from headfit.trace import trace

LABEL_CODE = "HF131"  # labels / token ids past the layer that indexes them
LOSS_INPUT_CODE = "HF135"  # a loss got a model's container output or a target of the wrong shape

_LOSS_FUNCTIONS = {
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
}


@finder(code=LOSS_INPUT_CODE, priority=20)
def loss_input(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """What the user's loss got: a model's whole output, a batch the model folded, labels past the
    logits, a target of another shape."""
    frame = _loss_frame(scene)
    if frame is None or _loss_of_a_target_taking_model(scene):
        return None
    output, target = frame.f_locals["input"], frame.f_locals["target"]
    loss_name = _loss_name(scene)
    out_name = name_of(scene, output, "outputs")
    target_name = name_of(scene, target, "labels")
    if not isinstance(output, torch.Tensor):
        aux_weight = family_for(scene.model).aux_loss_weight if scene.model is not None else None
        return _container_to_loss(aux_weight, output, out_name, target_name, loss_name)
    if not isinstance(target, torch.Tensor):
        return None
    folded = _batch_folded_by_model(scene, output, target)
    if folded is not None:
        return folded
    if frame.f_code.co_name in ("cross_entropy", "nll_loss"):
        return _class_targets(scene, exc, output, target, target_name)
    if output.shape != target.shape:
        return _size_mismatch(output, target, out_name, target_name, loss_name)
    return None


def _loss_of_a_target_taking_model(scene: Scene) -> bool:
    """A loss computed inside the forward of a model that takes its targets (a torchvision detector):
    its inputs are the model's own, and its family checks the targets (``check_targets``)."""
    model = scene.model
    return model is not None and model in scene.modules_on_stack and family_for(model).takes_targets


def _loss_frame(scene: Scene) -> FrameType | None:
    for frame in reversed(scene.frames):
        if (
            frame.f_code.co_name in _LOSS_FUNCTIONS
            and "input" in frame.f_locals
            and "target" in frame.f_locals
        ):
            return frame
    return None


_FOLDING_VIEW = re.compile(r"(\w+)\s*=\s*(\w+)\.(view|reshape)\(\s*-1\s*,")


def _batch_folded_by_model(scene: Scene, output: torch.Tensor, target: torch.Tensor) -> LiveEvidence | None:
    """The model returned fewer rows than the images it was given: a `view(-1, F)` with F hard-coded for
    another feature-map size folded several samples into one row (the loss then sees a smaller batch)."""
    if scene.model is None or output.dim() < 2 or target.dim() < 1 or output.shape[0] >= target.shape[0]:
        return None
    batch = target.shape[0]
    inputs = [t for t in _user_tensors(scene) if t.dim() >= 3 and t.shape[0] == batch]
    if not inputs:
        return None
    calls = trace(scene.model, (inputs[0],)).calls
    done = [c for c in calls if c.returned and c.output_shapes and c.output_shapes[0][:1] == [batch]]
    folded = next((c for c in calls if c.input_shapes and c.input_shapes[0][:1] == [output.shape[0]]), None)
    if folded is None or not done or not isinstance(_module_at(scene.model, folded.module), nn.Linear):
        return None
    per_sample = math.prod(done[-1].output_shapes[0][1:])
    layer = _module_at(scene.model, folded.module)
    owner_path = folded.module.rpartition(".")[0]
    owner = _module_at(scene.model, owner_path)
    view = _folding_view(type(owner))
    fact = (
        f"{batch} images went into `{scene.prefix}` but {output.shape[0]} rows reached `{module_name(folded.module)}`: "
        f"each sample has {fmt(per_sample)} features, `{module_name(folded.module)}` expects {fmt(layer.in_features)} "
        f"= {layer.in_features // per_sample} samples per row"
        + (f" (`{view[0]}` in `{type(owner).__name__}.forward`)" if view else "")
    )
    resize = f"{module_expr(scene.prefix, folded.module)} = nn.Linear({per_sample}, {layer.out_features})"
    fix = (
        f"{view[1]} = {view[1]}.view({view[1]}.size(0), -1)  # in {type(owner).__name__}.forward; and {resize}"
        if view
        else resize
    )
    cause = Cause(
        f"the flatten before `{module_name(folded.module)}` hard-codes {fmt(layer.in_features)} features and `-1` absorbs the batch",
        0.9,
        folded.module,
        "in_features",
        fix,
    )
    return LiveEvidence([fact], [cause])


def _user_tensors(scene: Scene) -> list[torch.Tensor]:
    frame = scene.user_frame
    return [v for v in names_in(frame).values() if isinstance(v, torch.Tensor)] if frame is not None else []


def _module_at(model: nn.Module, path: str) -> nn.Module | None:
    return model.get_submodule(path) if path else model


def _folding_view(cls: type) -> tuple[str, str] | None:
    """The `x = x.view(-1, F)` line of a module's forward, and the variable it assigns."""
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return None
    for line in source.splitlines():
        match = _FOLDING_VIEW.search(line)
        if match:
            return line.strip(), match.group(1)
    return None


def _loss_name(scene: Scene) -> str:
    losses = [m for m in scene.modules_on_stack if isinstance(m, _Loss)]
    return (name_of(scene, losses[-1], None) if losses else None) or "criterion"


def _container_to_loss(
    aux_weight: float | None, output: Any, out_name: str, target_name: str, loss: str
) -> LiveEvidence | None:
    """The whole output of a model given to a loss: its logits (and its auxiliary logits, weighted as the
    model's family trains them) are what the loss takes."""
    fields = getattr(output, "_fields", None)
    if fields:
        main = "logits" if "logits" in fields else fields[0]
        fact = f"the loss got a `{type(output).__name__}` ({', '.join(fields)}), not a tensor"
        fix = f"loss = {loss}({out_name}.{main}, {target_name})"
        if "aux_logits" in fields and aux_weight is not None:
            fix += f" + {aux_weight} * {loss}({out_name}.aux_logits, {target_name})"
            fact += "; the model returns it in train mode (aux_logits=True)"
    elif isinstance(output, Mapping):
        keys = list(output)
        main = "out" if "out" in keys else keys[0]
        fact = f"the loss got a `{type(output).__name__}` with keys {keys}, not a tensor"
        fix = f'loss = {loss}({out_name}["{main}"], {target_name})'
        if "aux" in keys and aux_weight is not None:
            fix += f' + {aux_weight} * {loss}({out_name}["aux"], {target_name})'
    else:
        return None
    cause = Cause(
        f"`{loss}` is given the model's whole output `{out_name}` instead of its logits", 0.9, None, None, fix
    )
    return LiveEvidence([fact], [cause])


def _class_targets(
    scene: Scene, exc: BaseException, logits: torch.Tensor, target: torch.Tensor, target_name: str
) -> LiveEvidence | None:
    if target.numel() == 0 or logits.dim() < 2:
        return None
    mask = _mask_encoding(scene, logits, target, target_name)
    if mask is not None or target.is_floating_point():
        return mask
    classes = logits.shape[1]
    if target.dim() == logits.dim() and target.shape[1] == 1:
        fact = f"`{target_name}` is {shape_str(list(target.shape))}: one class index per sample needs shape {shape_str([target.shape[0], *target.shape[2:]])}"
        cause = Cause(
            f"`{target_name}` has an extra dimension of size 1",
            0.9,
            None,
            None,
            f"{target_name} = {target_name}.squeeze(1)",
        )
        return LiveEvidence([fact], [cause])
    valid = target[target != -100]
    if valid.numel() == 0:
        return None
    low, high = int(valid.min()), int(valid.max())
    if 0 <= low and high < classes:
        return None
    evidence = _labels_out_of_range(scene, classes, low, high, target_name)
    bad = high if high >= classes else low
    named_head = any(c.module is not None for c in evidence.causes)  # the live head, with its count
    evidence.settles = target.dim() == 1 and named_head and message_is_about(exc, bad)
    return evidence


def _mask_encoding(
    scene: Scene, logits: torch.Tensor, target: torch.Tensor, name: str
) -> LiveEvidence | None:
    """A segmentation mask in an image encoding instead of one class index per pixel: one-hot
    [N, K, H, W], a colour (RGB) mask, or a binary mask saved as 0/255."""
    classes = logits.shape[1]
    if logits.dim() != 4:
        return None
    if target.dim() == 4 and _is_one_hot(target):
        return _one_hot_mask(scene, classes, target, name)
    if target.dim() == 4 and target.shape[1] in (3, 4):
        fact = (
            f"`{name}` is {shape_str(list(target.shape))} with values {int(target.min())}..{int(target.max())}: "
            f"{target.shape[1]} colour values per pixel, where cross-entropy takes one class index (0..{classes - 1})"
        )
        fix = (
            f"{name} = palette_to_index({name})  # map each colour to its class index once, in the dataset; "
            "or save the masks as single-channel index PNGs"
        )
        summary = f"`{name}` is a colour (RGB) mask image, not a mask of class indices"
        return LiveEvidence([fact], [Cause(summary, 0.95, None, None, fix)], settles=True)
    values = sorted(int(v) for v in torch.unique(target)[:8])
    if target.dim() != 3 or 255 not in values or classes >= 255:
        return None
    if values == [0, 255]:
        fact = f"`{name}` holds only the values 0 and 255: a binary mask saved as an image, not class indices 0..1"
        fix = f"{name} = ({name} > 127).long()  # 0/255 -> 0/1"
        cause = Cause(f"`{name}` is a 0/255 binary mask; the {classes}-class head takes 0/1", 0.95, None, None, fix)
        return LiveEvidence([fact], [cause], settles=True)
    rest = [v for v in values if v != 255]
    if rest and max(rest) < classes:
        fact = f"`{name}` holds {values}: every value but 255 is a class of the {classes}-class head, 255 marks the pixels to ignore (VOC boundaries)"
        fix = "criterion = nn.CrossEntropyLoss(ignore_index=255)"
        cause = Cause(f"255 in `{name}` is the ignore marker, but the loss ignores -100", 0.95, None, None, fix)
        return LiveEvidence([fact], [cause], settles=True)
    return None


def _is_one_hot(target: torch.Tensor) -> bool:
    values = torch.unique(target)
    return len(values) <= 2 and set(values.tolist()) <= {0, 1} and bool((target.sum(1) == 1).all())


def _one_hot_mask(scene: Scene, classes: int, target: torch.Tensor, name: str) -> LiveEvidence:
    """One-hot masks of K classes: cross-entropy takes their argmax; a class conv sized for another count
    than K is named and re-headed."""
    k = target.shape[1]
    facts = [f"`{name}` is one-hot {shape_str(list(target.shape))}: {k} classes, one 1 per pixel along dim 1"]
    index = f"{name}.argmax(1)  # one-hot [N, K, H, W] -> class indices [N, H, W]"
    head = _head_with_outputs(scene.model, classes) if scene.model is not None else None
    if k == classes or head is None:
        cause = Cause(f"`{name}` is one-hot; the loss takes class indices", 0.9, None, None, f"{name} = {index}")
        return LiveEvidence(facts, [cause], settles=True)
    path, layer = head
    facts.append(f"`{module_name(path)}` emits {classes} classes but the one-hot `{name}` has {k}")
    fix = f"{_resized_head(scene.prefix, path, layer, k)}; and {name} = {index}"
    cause = Cause(
        f"the one-hot `{name}` has {k} classes but the class conv `{module_name(path)}` was built for {classes}",
        0.95,
        path,
        _out_attr(layer),
        fix,
    )
    return LiveEvidence(facts, [cause], settles=True)


def _labels_out_of_range(scene: Scene, classes: int, low: int, high: int, target_name: str) -> LiveEvidence:
    facts = [
        f"the labels in `{target_name}` run from {low} to {high}; the logits have {classes} classes (0..{classes - 1})"
    ]
    causes = []
    if low < 0:
        causes.append(
            Cause(
                f"`{target_name}` holds negative labels ({low})",
                0.8,
                None,
                None,
                f"assert ({target_name} >= 0).all()",
            )
        )
    head = _head_with_outputs(scene.model, classes) if scene.model is not None else None
    if high >= classes:
        needed = high + 1
        if head is not None:
            path, layer = head
            facts.append(f"`{module_name(path)}` emits {classes} classes")
            fix = _resized_head(scene.prefix, path, layer, needed)
            causes.append(
                Cause(
                    f"label {high} needs {needed} classes but `{module_name(path)}` emits {classes}",
                    0.7,
                    path,
                    _out_attr(layer),
                    fix,
                )
            )
        if low >= 1 and high == classes:
            causes.append(
                Cause(
                    f"`{target_name}` counts classes from 1; the loss counts from 0",
                    0.75,
                    None,
                    None,
                    f"{target_name} = {target_name} - 1",
                )
            )
    return LiveEvidence(facts, causes, code=LABEL_CODE)


def _head_with_outputs(model: nn.Module, outputs: int) -> tuple[str, nn.Module] | None:
    """The classifier that emits ``outputs`` classes: the family's head, else the last such layer."""
    for head in family_for(model).heads(model):
        if head.kind == "classifier" and head.outputs == outputs:
            return head.path, model.get_submodule(head.path)
    found = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and m.out_features == outputs:
            found = (name, m)
        elif isinstance(m, nn.modules.conv._ConvNd) and m.out_channels == outputs:
            found = (name, m)
    return found


def _out_attr(layer: nn.Module) -> str:
    return "out_features" if isinstance(layer, nn.Linear) else "out_channels"


def _resized_head(prefix: str, path: str, layer: nn.Module, outputs: int) -> str:
    return f"{module_expr(prefix, path)} = {layer_code(layer, in_width(layer), outputs)}"


def _size_mismatch(output, target, out_name: str, target_name: str, loss: str) -> LiveEvidence | None:
    out_shape, tgt_shape = list(output.shape), list(target.shape)
    fact = f"`{out_name}` is {shape_str(out_shape)} but `{target_name}` is {shape_str(tgt_shape)}"
    if out_shape == [*tgt_shape, 1]:
        fix = f"loss = {loss}({out_name}.squeeze(-1), {target_name}.float())"
    elif tgt_shape == [*out_shape, 1]:
        fix = f"loss = {loss}({out_name}, {target_name}.squeeze(-1).float())"
    elif output.numel() == target.numel():
        fix = f"loss = {loss}({out_name}, {target_name}.view_as({out_name}).float())"
    else:
        return LiveEvidence([fact], [])
    cause = Cause(
        f"`{out_name}` and `{target_name}` differ only by a dimension of size 1", 0.9, None, None, fix
    )
    return LiveEvidence([fact], [cause])
