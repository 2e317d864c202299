"""Per-layer live knowledge: what a layer expects against what reached it, and what the data says.

``layer_evidence`` reads one module (Linear, Conv, BatchNorm, LayerNorm, MultiheadAttention, pooling,
Upsample) and the shapes that reached it; ``enrich`` calls it for the module where a forward failed.
``data_evidence`` reads the values in the failing frames (labels, token ids, target boxes, state dicts,
skip connections, losses fed a container) for the live hooks in ``headfit.live``.
Imported only once torch is loaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, product_expr, shape_str
from headfit.families._detection_targets import ZERO_SIZE_FILTER, only_zero_size
from headfit.families._util import in_width, layer_code
from headfit.families.base import Evidence

if TYPE_CHECKING:
    from headfit.live import Scene

LABEL_CODE = "HF131"  # labels / token ids past the layer that indexes them
TARGET_CODE = "HF132"  # detection targets that are not x1,y1,x2,y2 boxes with labels in range
PREFIX_CODE = "HF133"  # a state_dict whose keys carry `module.` / `_orig_mod.`
SKIP_CODE = "HF134"  # a skip connection joins feature maps of different sizes
LOSS_INPUT_CODE = "HF135"  # a loss got a model's container output or a target of the wrong shape
COLLATE_CODE = "HF136"  # a DataLoader's default collate cannot stack samples of different sizes


@dataclass
class LiveEvidence(Evidence):
    code: str | None = None  # the code to use when the message alone was not recognised


def path_expr(prefix: str, path: str) -> str:
    """``("model", "classifier.1")`` -> ``model.classifier[1]``: pasteable Python for a module path."""
    expr = prefix
    for part in path.split(".") if path else []:
        expr += f"[{part}]" if part.isdigit() else f".{part}"
    return expr


# ---------------------------------------------------------------------------------------------------
# one layer against the shapes that reached it


def layer_evidence(
    module: nn.Module,
    module_path: str,
    diagnosis: Diagnosis,
    prefix: str = "model",
    input_shapes: list[list[int]] | None = None,
) -> Evidence:
    """What ``module`` expects against the first input that reached it (``input_shapes[0]``)."""
    if not input_shapes:
        return Evidence()
    shape = list(input_shapes[0])
    target = path_expr(prefix, module_path)
    for kind, check in _CHECKS:
        if isinstance(module, kind):
            return check(module, module_path, target, shape)
    return Evidence()


def _linear(m: nn.Linear, path: str, target: str, shape: list[int]) -> Evidence:
    arrived = shape[-1] if shape else 0
    if arrived == m.in_features:
        return Evidence()
    facts = [f"`{path}` expects {fmt(m.in_features)} input features; its input is {shape_str(shape)}"]
    if len(shape) >= 3 and math.prod(shape[1:]) == m.in_features:
        facts.append(f"{product_expr(shape[1:])} features per sample: the right count, not yet flattened")
        cause = Cause(
            f"the feature map reaches `{path}` without a flatten",
            0.9,
            path,
            None,
            f"x = torch.flatten(x, 1)  # in forward, just before {target}(x)",
        )
        return Evidence(facts, [cause])
    if len(shape) == 4 and shape[1] == m.in_features:
        facts.append(f"a {shape[1]}-channel feature map arrives where a 1x1 convolution belongs")
        fix = f"{target} = nn.Conv2d({m.in_features}, {m.out_features}, kernel_size=1)"
        return Evidence(
            facts, [Cause(f"`{path}` is a Linear but receives a feature map", 0.95, path, None, fix)]
        )
    bias = "" if m.bias is not None else ", bias=False"
    fix = f"{target} = nn.Linear({arrived}, {m.out_features}{bias})"
    cause = Cause(
        f"`{path}` has `in_features` {m.in_features} but {fmt(arrived)} features arrive",
        0.9,
        path,
        "in_features",
        fix,
    )
    return Evidence(facts, [cause])


def _conv(m: nn.modules.conv._ConvNd, path: str, target: str, shape: list[int]) -> Evidence:
    spatial = len(m.kernel_size)
    if len(shape) not in (spatial + 1, spatial + 2):
        return Evidence()  # a wrong rank has no channel dimension to read (the message's rule says so)
    channel_dim = 1 if len(shape) == spatial + 2 else 0
    arrived = shape[channel_dim]
    if arrived != m.in_channels:
        return _conv_channels(m, path, target, shape, arrived)
    return _conv_kernel(m, path, shape[channel_dim + 1 :])


def _conv_channels(m, path: str, target: str, shape: list[int], arrived: int) -> Evidence:
    facts = [
        f"`{path}` expects {m.in_channels} input channels (`in_channels`, groups={m.groups}); "
        f"its input {shape_str(shape)} has {arrived}"
    ]
    if arrived == 1 and m.in_channels == 3:
        facts.append("a 1-channel (grayscale) image reaches a 3-channel (RGB) stem")
        causes = [
            Cause(
                f"a grayscale image reaches `{path}`, which takes 3 channels",
                0.9,
                path,
                "in_channels",
                "x = x.expand(-1, 3, -1, -1)  # repeat the grey channel before calling the model",
            ),
            Cause(
                f"keep 1-channel input and fold the RGB filters of `{path}` into one",
                0.5,
                path,
                "weight",
                f"{target}.weight = nn.Parameter({target}.weight.sum(dim=1, keepdim=True)); "
                f"{target}.in_channels = 1",
            ),
        ]
        return Evidence(facts, causes)
    fix = f"{target} = {layer_code(m, arrived, m.out_channels)}"
    cause = Cause(
        f"`{path}` has `in_channels` {m.in_channels} but {arrived} channels arrive",
        0.85,
        path,
        "in_channels",
        fix,
    )
    return Evidence(facts, [cause])


def _conv_kernel(m, path: str, spatial: list[int]) -> Evidence:
    padding = (0,) * len(spatial) if isinstance(m.padding, str) else m.padding
    reach = [d * (k - 1) + 1 for d, k in zip(m.dilation, m.kernel_size, strict=False)]
    padded = [s + 2 * p for s, p in zip(spatial, padding, strict=False)]
    if all(p >= r for p, r in zip(padded, reach, strict=False)):
        return Evidence()
    fact = (
        f"`{path}` needs at least {shape_str(reach)} pixels (kernel, dilation) but gets "
        f"{shape_str(spatial)} (+ padding {shape_str(list(padding))})"
    )
    cause = Cause(
        f"the feature map is too small for `{path}` by the time it gets there",
        0.7,
        path,
        "kernel_size",
        "use larger input images (see `headfit sizes MODEL` for the sizes the model accepts)",
    )
    return Evidence([fact], [cause])


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, path: str, target: str, shape: list[int]) -> Evidence:
    if len(shape) < 2:
        return Evidence()
    if shape[1] != m.num_features:
        fact = f"`{path}` normalises {m.num_features} channels (`num_features`); its input {shape_str(shape)} has {shape[1]}"
        fix = f"{target} = nn.{type(m).__name__}({shape[1]})"
        return Evidence(
            [fact], [Cause(f"`{path}` has `num_features` {m.num_features}", 0.85, path, "num_features", fix)]
        )
    values = shape[0] * math.prod(shape[2:])
    if m.training and values == 1:
        fact = (
            f"`{path}` is in train mode and got {shape_str(shape)}: one value per channel, "
            "so the batch statistics are undefined"
        )
        causes = [
            Cause(
                f"a batch of one reaches `{path}` in train mode (often the last, incomplete batch)",
                0.9,
                path,
                "training",
                "DataLoader(dataset, batch_size=..., shuffle=True, drop_last=True)",
            ),
            Cause(f"`{path}` is in train mode at inference time", 0.5, path, "training", f"{target}.eval()"),
        ]
        return Evidence([fact], causes)
    return Evidence()


def _layernorm(m: nn.LayerNorm, path: str, target: str, shape: list[int]) -> Evidence:
    expected = list(m.normalized_shape)
    got = shape[-len(expected) :]
    if got == expected:
        return Evidence()
    fact = f"`{path}` normalises the last dims {shape_str(expected)}; its input {shape_str(shape)} ends in {shape_str(got)}"
    fix = f"{target} = nn.LayerNorm({got[0] if len(got) == 1 else tuple(got)})"
    return Evidence(
        [fact],
        [Cause(f"`{path}` has `normalized_shape` {tuple(expected)}", 0.8, path, "normalized_shape", fix)],
    )


def _attention(m: nn.MultiheadAttention, path: str, target: str, shape: list[int]) -> Evidence:
    if not shape or shape[-1] == m.embed_dim:
        return Evidence()
    fact = f"`{path}` has `embed_dim` {m.embed_dim}; the query {shape_str(shape)} has {shape[-1]} features"
    batch_first = ", batch_first=True" if m.batch_first else ""
    fix = f"{target} = nn.MultiheadAttention({shape[-1]}, {m.num_heads}{batch_first})"
    return Evidence([fact], [Cause(f"`{path}` has `embed_dim` {m.embed_dim}", 0.8, path, "embed_dim", fix)])


def _pool(m: nn.Module, path: str, target: str, shape: list[int]) -> Evidence:
    kernel = getattr(m, "kernel_size", None)
    if kernel is None or len(shape) < 3:
        return Evidence()
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * 2
    spatial = shape[-len(kernel) :]
    if all(s >= k for s, k in zip(spatial, kernel, strict=False)):
        return Evidence()
    fact = f"`{path}` pools with kernel {shape_str(list(kernel))} but the feature map is {shape_str(spatial)}"
    cause = Cause(
        f"the feature map is too small for `{path}`",
        0.7,
        path,
        "kernel_size",
        "use larger input images (see `headfit sizes MODEL` for the sizes the model accepts)",
    )
    return Evidence([fact], [cause])


def _upsample(m: nn.Upsample, path: str, target: str, shape: list[int]) -> Evidence:
    fact = f"`{path}` ({m.mode}, size={m.size}, scale_factor={m.scale_factor}) got {shape_str(shape)}"
    return Evidence([fact], [])


_CHECKS = [
    (nn.Linear, _linear),
    (nn.modules.conv._ConvNd, _conv),
    (nn.modules.batchnorm._BatchNorm, _batchnorm),
    (nn.LayerNorm, _layernorm),
    (nn.MultiheadAttention, _attention),
    (nn.modules.pooling._MaxPoolNd, _pool),
    (nn.modules.pooling._AvgPoolNd, _pool),
    (nn.Upsample, _upsample),
]


# ---------------------------------------------------------------------------------------------------
# frames


def frame_inputs(frame: FrameType | None) -> list[tuple[str, Any]]:
    """The tensor arguments of a frame's function, in order (``self`` left out)."""
    if frame is None:
        return []
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return [
        (n, frame.f_locals[n])
        for n in names
        if n != "self" and isinstance(frame.f_locals.get(n), torch.Tensor)
    ]


def tensor_fact(scene: Scene, limit: int = 6) -> str | None:
    """``tensors in `Up.forward`: `x1` [1, 64, 28, 28], `x2` [1, 64, 27, 27]``, from the failing frame."""
    frame = failing_method_frame(scene)
    if frame is None:
        return None
    tensors = [(n, v) for n, v in frame.f_locals.items() if isinstance(v, torch.Tensor)]
    if not tensors:
        return None
    shown = ", ".join(f"`{n}` {shape_str(list(v.shape))}" for n, v in tensors[:limit])
    owner = type(frame.f_locals["self"]).__name__ if "self" in frame.f_locals else None
    where = f"{owner}.{frame.f_code.co_name}" if owner else frame.f_code.co_name
    return f"tensors in `{where}`: {shown}"


def _forward_frame(scene: Scene, module: nn.Module) -> FrameType | None:
    """The outermost frame running ``module``'s own code (its forward), not ``nn.Module.__call__``."""
    from headfit.live import MODULE_CALL_FUNCTIONS

    for frame in scene.frames:
        if frame.f_locals.get("self") is module and frame.f_code.co_name not in MODULE_CALL_FUNCTIONS:
            return frame
    return None


def failing_method_frame(scene: Scene) -> FrameType | None:
    """The innermost frame running a method of the failing module: where its line and tensors are."""
    if scene.module_frame is None:
        return None
    start = scene.frames.index(scene.module_frame)
    for frame in reversed(scene.frames[start:]):
        if frame.f_locals.get("self") is scene.module:
            return frame
    return scene.module_frame


# ---------------------------------------------------------------------------------------------------
# the data in the failing frames


def data_evidence(scene: Scene, exc: BaseException, diagnosis: Diagnosis) -> LiveEvidence:
    """Everything the values in the frames add: each finder returns LiveEvidence or None."""
    found = LiveEvidence()
    for finder in (
        _last_batch_of_one,
        _collate_sizes,
        _loss_input,
        _embedding_index,
        _targets,
        _prefixed_state_dict,
        _skip_connection,
        _grey_input,
    ):
        try:
            evidence = finder(scene, exc)
        except Exception:  # one finder's blind spot must not hide the others
            evidence = None
        if evidence is not None:
            found.facts.extend(f for f in evidence.facts if f not in found.facts)
            found.causes.extend(evidence.causes)
            found.code = found.code or evidence.code
    return found


_LOSS_FUNCTIONS = {
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
}


def _last_batch_of_one(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """A BatchNorm in train mode got one sample: find the DataLoader whose last batch has one."""
    from torch.utils.data import DataLoader

    module = scene.module
    if not isinstance(module, nn.modules.batchnorm._BatchNorm) or not module.training:
        return None
    for name, loader in _user_values(scene, DataLoader):
        size, batch = len(loader.dataset), loader.batch_size
        if batch and not loader.drop_last and size % batch == 1:
            fact = f"`{name}` has {size} samples in batches of {batch}: {size} = {size // batch}*{batch} + 1, so its last batch has one sample"
            fix = f"{name} = DataLoader({name}.dataset, batch_size={batch}, drop_last=True)  # keep your other arguments"
            cause = Cause(
                f"the last batch of `{name}` has one sample and `{scene.module_path}` is in train mode",
                0.95,
                scene.module_path,
                "training",
                fix,
            )
            return LiveEvidence([fact], [cause], None)
    return None


def _collate_sizes(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """The default collate tried to stack samples of different sizes: detection needs its own collate_fn."""
    from torch.utils.data import DataLoader

    batches = [f.f_locals["batch"] for f in scene.frames if f.f_code.co_name == "default_collate"]
    if not batches or "stack expects each tensor to be equal size" not in str(exc):
        return None
    samples = batches[0]
    loaders = _user_values(scene, DataLoader)
    name, loader = loaders[0] if loaders else ("loader", None)
    batch_size = loader.batch_size if loader is not None else "..."
    stacked = _stacked_tensors(scene)
    key = _collated_key(scene)
    boxes = bool(stacked) and all(t.ndim == 2 and t.shape[-1] == 4 for t in stacked)
    detection = boxes or any(
        isinstance(part, Mapping) and "boxes" in part for sample in samples for part in _parts(sample)
    )
    if detection and samples and isinstance(samples[0], Mapping):
        return _box_dict_collate(name, batch_size, key, stacked)
    if detection:
        fact = f"`{name}` yields (image, target) samples with images and box counts of different sizes; the default collate stacks them into one tensor"
        fix = f"{name} = DataLoader({name}.dataset, batch_size={batch_size}, collate_fn=lambda batch: tuple(zip(*batch)))  # keep your other arguments"
        summary = f"`{name}` uses the default collate for detection samples; detectors take lists"
        return LiveEvidence([fact], [Cause(summary, 0.9, None, None, fix)], COLLATE_CODE)
    shapes = sorted({shape_str(list(t.shape)) for t in stacked or _tensors_of(samples)})[:4]
    where = f" in `{key}`" if key else ""
    fact = (
        f"`{name}` yields samples of different shapes{where} ({', '.join(shapes)}); a batch needs one shape"
    )
    fix = "transforms.Resize((224, 224))  # in the dataset's transform, so every sample has one size"
    return LiveEvidence(
        [fact], [Cause(f"the samples of `{name}` differ in size", 0.8, None, None, fix)], COLLATE_CODE
    )


def _stacked_tensors(scene: Scene) -> list[torch.Tensor]:
    """The tensors the innermost collate call tried to stack (one field of every sample)."""
    for frame in reversed(scene.frames):
        if frame.f_code.co_name in ("collate_tensor_fn", "collate", "default_collate"):
            batch = frame.f_locals.get("batch")
            if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
                return list(batch)
    return []


def _collated_key(scene: Scene) -> str | None:
    """The dict key being collated when it failed (the collate of a dict sample recurses per key)."""
    for frame in reversed(scene.frames):
        key = frame.f_locals.get("key") if "collate" in frame.f_code.co_filename else None
        if isinstance(key, str):
            return key
    return None


def _box_dict_collate(
    name: str, batch_size: Any, key: str | None, stacked: list[torch.Tensor]
) -> LiveEvidence:
    """Dict samples with a different number of boxes each: collate every key into a list instead."""
    field = f"`{key}`" if key else "a field"
    counts = ", ".join(str(int(t.shape[0])) for t in stacked[:4])
    fact = (
        f"`{name}` yields dict samples whose {field} holds boxes of shape [N, 4] with N = {counts}: "
        "images with different numbers of objects cannot be stacked into one tensor"
    )
    fix = (
        f"{name} = DataLoader({name}.dataset, batch_size={batch_size}, "
        "collate_fn=lambda batch: {key: [sample[key] for sample in batch] for key in batch[0]})  # keep your other arguments"
    )
    summary = f"the default collate of `{name}` stacks {field} across samples, but each image has its own number of boxes"
    return LiveEvidence([fact], [Cause(summary, 0.9, None, key, fix)], COLLATE_CODE)


def _parts(sample: Any) -> list[Any]:
    return list(sample) if isinstance(sample, (tuple, list)) else [sample]


def _tensors_of(samples: list[Any]) -> list[torch.Tensor]:
    return [part for sample in samples for part in _parts(sample) if isinstance(part, torch.Tensor)]


def _user_values(scene: Scene, kind: type) -> list[tuple[str, Any]]:
    """(name, value) of every ``kind`` in the user's frames, innermost first."""
    from headfit.live import is_library, names_in

    found, seen = [], set()
    for frame in reversed(scene.frames):
        if is_library(frame):
            continue
        for name, value in names_in(frame).items():
            if isinstance(value, kind) and id(value) not in seen and not name.startswith("_"):
                seen.add(id(value))
                found.append((name, value))
    return found


def _loss_frame(scene: Scene) -> FrameType | None:
    for frame in reversed(scene.frames):
        if (
            frame.f_code.co_name in _LOSS_FUNCTIONS
            and "input" in frame.f_locals
            and "target" in frame.f_locals
        ):
            return frame
    return None


def _loss_input(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    frame = _loss_frame(scene)
    if frame is None:
        return None
    output, target = frame.f_locals["input"], frame.f_locals["target"]
    loss_name = _loss_name(scene)
    out_name = _name(scene, output, "outputs")
    target_name = _name(scene, target, "labels")
    if not isinstance(output, torch.Tensor):
        return _container_to_loss(output, out_name, target_name, loss_name)
    if not isinstance(target, torch.Tensor):
        return None
    folded = _batch_folded_by_model(scene, output, target)
    if folded is not None:
        return folded
    if frame.f_code.co_name in ("cross_entropy", "nll_loss"):
        return _class_targets(scene, output, target, out_name, target_name)
    if output.shape != target.shape:
        return _size_mismatch(output, target, out_name, target_name, loss_name)
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
    from headfit.trace import trace

    calls = trace(scene.model, (inputs[0],), diagnose=False).calls
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
        f"{batch} images went into `{scene.prefix}` but {output.shape[0]} rows reached `{folded.module}`: "
        f"each sample has {fmt(per_sample)} features, `{folded.module}` expects {fmt(layer.in_features)} "
        f"= {layer.in_features // per_sample} samples per row"
        + (f" (`{view[0]}` in `{type(owner).__name__}.forward`)" if view else "")
    )
    resize = f"{path_expr(scene.prefix, folded.module)} = nn.Linear({per_sample}, {layer.out_features})"
    fix = (
        f"{view[1]} = {view[1]}.view({view[1]}.size(0), -1)  # in {type(owner).__name__}.forward; and {resize}"
        if view
        else resize
    )
    cause = Cause(
        f"the flatten before `{folded.module}` hard-codes {fmt(layer.in_features)} features and `-1` absorbs the batch",
        0.9,
        folded.module,
        "in_features",
        fix,
    )
    return LiveEvidence([fact], [cause], LOSS_INPUT_CODE)


def _user_tensors(scene: Scene) -> list[torch.Tensor]:
    from headfit.live import names_in

    frame = scene.user_frame
    return [v for v in names_in(frame).values() if isinstance(v, torch.Tensor)] if frame is not None else []


def _module_at(model: nn.Module, path: str) -> nn.Module | None:
    return model.get_submodule(path) if path else model


def _folding_view(cls: type) -> tuple[str, str] | None:
    """The `x = x.view(-1, F)` line of a module's forward, and the variable it assigns."""
    import inspect

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
    from torch.nn.modules.loss import _Loss

    losses = [m for m in scene.modules_on_stack if isinstance(m, _Loss)]
    return (_name(scene, losses[-1], None) if losses else None) or "criterion"


def _name(scene: Scene, obj: Any, default: str | None) -> str | None:
    from headfit.live import user_name

    return user_name(scene, obj) or default


def _container_to_loss(output: Any, out_name: str, target_name: str, loss: str) -> LiveEvidence | None:
    fields = getattr(output, "_fields", None)
    if fields:
        main = "logits" if "logits" in fields else fields[0]
        fact = f"the loss got a `{type(output).__name__}` ({', '.join(fields)}), not a tensor"
        fix = f"loss = {loss}({out_name}.{main}, {target_name})"
        if "aux_logits" in fields:
            fix += f" + 0.4 * {loss}({out_name}.aux_logits, {target_name})"
            fact += "; the model returns it in train mode (aux_logits=True)"
    elif isinstance(output, Mapping):
        keys = list(output)
        main = "out" if "out" in keys else keys[0]
        fact = f"the loss got a `{type(output).__name__}` with keys {keys}, not a tensor"
        fix = f'loss = {loss}({out_name}["{main}"], {target_name})'
        if "aux" in keys:
            fix += f' + 0.5 * {loss}({out_name}["aux"], {target_name})'
    else:
        return None
    cause = Cause(
        f"`{loss}` is given the model's whole output `{out_name}` instead of its logits", 0.9, None, None, fix
    )
    return LiveEvidence([fact], [cause], LOSS_INPUT_CODE)


def _class_targets(scene: Scene, logits, target, out_name: str, target_name: str) -> LiveEvidence | None:
    if target.is_floating_point() or target.numel() == 0 or logits.dim() < 2:
        return None
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
        return LiveEvidence([fact], [cause], LOSS_INPUT_CODE)
    valid = target[target != -100]
    if valid.numel() == 0:
        return None
    low, high = int(valid.min()), int(valid.max())
    if 0 <= low and high < classes:
        return None
    return _labels_out_of_range(scene, classes, low, high, target_name)


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
            facts.append(f"`{path}` emits {classes} classes")
            fix = _resized_head(scene.prefix, path, layer, needed)
            causes.append(
                Cause(
                    f"label {high} needs {needed} classes but `{path}` emits {classes}",
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
    return LiveEvidence(facts, causes, LABEL_CODE)


def _head_with_outputs(model: nn.Module, outputs: int) -> tuple[str, nn.Module] | None:
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
    return f"{path_expr(prefix, path)} = {layer_code(layer, in_width(layer), outputs)}"


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
        return LiveEvidence([fact], [], LOSS_INPUT_CODE)
    cause = Cause(
        f"`{out_name}` and `{target_name}` differ only by a dimension of size 1", 0.9, None, None, fix
    )
    return LiveEvidence([fact], [cause], LOSS_INPUT_CODE)


def _embedding_index(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    module = scene.module
    if not isinstance(module, nn.Embedding):
        return None
    inputs = frame_inputs(failing_method_frame(scene))
    if not inputs or inputs[0][1].numel() == 0:
        return None
    ids = inputs[0][1]
    high, low = int(ids.max()), int(ids.min())
    if 0 <= low and high < module.num_embeddings:
        return None
    path = scene.module_path
    name = _name(scene, ids, "token_ids")
    facts = [
        f"`{path}` has {module.num_embeddings} rows (`num_embeddings`, ids 0..{module.num_embeddings - 1}); `{name}` holds ids from {low} to {high}"
    ]
    fix = f"{path_expr(scene.prefix, path)} = nn.Embedding({high + 1}, {module.embedding_dim})"
    cause = Cause(f"id {high} is past the last row of `{path}`", 0.85, path, "num_embeddings", fix)
    return LiveEvidence(facts, [cause], LABEL_CODE)


def _target_lists(scene: Scene) -> list[dict]:
    for frame in reversed(scene.frames):
        for value in frame.f_locals.values():
            if (
                isinstance(value, (list, tuple))
                and value
                and all(isinstance(t, Mapping) and "boxes" in t for t in value)
            ):
                return list(value)
    return []


def _targets(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    targets = _target_lists(scene)
    if not targets or scene.model is None:
        return None
    found = LiveEvidence(code=TARGET_CODE)
    name = _name(scene, targets, "targets")
    classes = _head_classes(scene.model)
    for i, target in enumerate(targets):
        for finding in (_box_shape, _box_order, _label_range):
            evidence = finding(target, i, name, classes, scene)
            if evidence is not None:
                found.facts.extend(evidence.facts)
                found.causes.extend(evidence.causes)
                break
        if found.causes:
            break
    family = _family_target_evidence(scene.model, targets)
    if family is not None:
        found.facts.extend(f for f in family.facts if f not in found.facts)
        found.causes = family.causes + [
            c for c in found.causes if c.fix not in {f.fix for f in family.causes}
        ]
    return found if found.facts or found.causes else None


def _family_target_evidence(model: nn.Module, targets: list[dict]) -> Evidence | None:
    try:
        from headfit.families import torchvision_detection
    except ImportError:
        return None
    check = getattr(torchvision_detection, "check_targets", None)
    return check(model, targets) if check is not None else None


def _head_classes(model: nn.Module) -> int | None:
    """The classifier outputs of the model (background included where the family counts it)."""
    from headfit.families import family_for

    heads = [h for h in family_for(model).heads(model) if h.kind in ("classifier", "box_classifier")]
    return heads[0].outputs if heads else None


def _box_shape(target, i: int, name: str, classes, scene) -> Evidence | None:
    boxes = target["boxes"]
    if isinstance(boxes, torch.Tensor) and boxes.dim() == 2 and boxes.shape[-1] == 4:
        return None
    shape = list(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
    fact = f'`{name}[{i}]["boxes"]` is {shape}; boxes must be a float tensor of shape [N, 4] ([0, 4] for an image with no objects)'
    fix = f'{name}[{i}]["boxes"] = torch.zeros((0, 4), dtype=torch.float32)  # or .reshape(-1, 4)'
    return Evidence(
        [fact], [Cause(f'`{name}[{i}]["boxes"]` does not have shape [N, 4]', 0.9, None, None, fix)]
    )


def _box_order(target, i: int, name: str, classes, scene) -> Evidence | None:
    boxes = target["boxes"]
    if boxes.numel() == 0:
        return None
    bad = ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).nonzero().flatten()
    if bad.numel() == 0:
        return None
    j = int(bad[0])
    box = [round(float(v), 2) for v in boxes[j]]
    x1, y1, x2, y2 = box
    flagged = torch.zeros(len(boxes), dtype=torch.bool)
    flagged[bad] = True
    if only_zero_size(boxes, flagged):
        return _zero_size_boxes(box, f"{name}[{i}]", j, int(bad.numel()), len(boxes), i)
    fact = (
        f'`{name}[{i}]["boxes"][{j}]` is {box}: x2 = {x2:g} <= x1 = {x1:g} or y2 = {y2:g} <= y1 = {y1:g}; '
        f"read as x, y, w, h it is the box [{x1:g}, {y1:g}, {x1 + x2:g}, {y1 + y2:g}]"
    )
    fix = f'{name}[{i}]["boxes"] = torchvision.ops.box_convert({name}[{i}]["boxes"], in_fmt="xywh", out_fmt="xyxy")'
    cause = Cause(
        "target boxes are given as x, y, w, h; torchvision detectors take x1, y1, x2, y2",
        0.85,
        None,
        None,
        fix,
    )
    return Evidence(
        [fact, f"{bad.numel()} of {len(boxes)} boxes in image {i} have x2 <= x1 or y2 <= y1"], [cause]
    )


def _zero_size_boxes(box: list[float], target: str, j: int, flat: int, total: int, i: int) -> Evidence:
    x1, y1, x2, y2 = box
    fact = (
        f'`{target}["boxes"][{j}]` is {box}: width {x2:g} - {x1:g} = {x2 - x1:g}, height {y2:g} - {y1:g} = {y2 - y1:g}; '
        "no box is inverted, so the format is x1, y1, x2, y2 and this box is empty"
    )
    cause = Cause(
        f"{flat} of {total} boxes in image {i} have zero width or height (empty annotations)",
        0.9,
        None,
        "boxes",
        ZERO_SIZE_FILTER.format(t=target) + "  # or drop them in the dataset",
    )
    return Evidence([fact], [cause])


def _label_range(target, i: int, name: str, classes, scene) -> Evidence | None:
    labels = target.get("labels")
    if classes is None or not isinstance(labels, torch.Tensor) or labels.numel() == 0:
        return None
    high = int(labels.max())
    if high < classes:
        return None
    fact = f'`{name}[{i}]["labels"]` holds label {high}; the box classifier has {classes} outputs (0..{classes - 1}, 0 is background)'
    fix = f"headfit.adapt({scene.prefix}, num_classes={high})"
    return Evidence(
        [fact], [Cause(f"label {high} is past the {classes} classes of the head", 0.85, None, None, fix)]
    )


def _prefixed_state_dict(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    from headfit.live import is_library

    user_first = sorted(reversed(scene.frames), key=is_library)  # the user's own name for it, if any
    for frame in user_first:
        for name, value in frame.f_locals.items():
            prefix = _common_prefix(value)
            if prefix is None:
                continue
            sd_name = _name(scene, value, None) or (name if name != "self" else "state_dict")
            fact = f"every key of `{sd_name}` starts with `{prefix}` (e.g. `{next(iter(value))}`), the model's keys do not"
            fix = f'{scene.prefix}.load_state_dict({{k.removeprefix("{prefix}"): v for k, v in {sd_name}.items()}})'
            cause = Cause(
                f"`{sd_name}` was saved from a wrapped model (`{prefix}` prefix)", 0.9, "", None, fix
            )
            return LiveEvidence([fact], [cause], PREFIX_CODE)
    return None


# a fix's free name `state` stands for the state_dict given to load_state_dict
_STATE_NAME = re.compile(r"(?<![\w.])state(?![\w])")


def name_the_state_dict(scene: Scene, diagnosis: Diagnosis) -> None:
    """Rewrite the fixes' placeholder `state` as what the user passed to `load_state_dict`: their variable's
    name, or, for an expression such as `torch.load(path)`, a first statement `state = torch.load(path)`.

    Read from the user's source line: `load_state_dict` copies its argument, so the live object has no name.
    """
    if not any(f.f_code.co_name == "load_state_dict" for f in scene.frames):
        return
    expression = _load_state_dict_argument(scene.user_frame)
    if expression is None or expression == "state":
        return
    for cause in diagnosis.causes:
        if not cause.fix or not _STATE_NAME.search(cause.fix):
            continue
        if expression.isidentifier():
            cause.fix = _STATE_NAME.sub(expression, cause.fix)
        else:
            cause.fix = f"state = {expression}; {cause.fix}"


def _load_state_dict_argument(frame: FrameType | None) -> str | None:
    """The source of the argument in the user's `....load_state_dict(ARG)` call on the failing line."""
    import ast
    import linecache

    if frame is None:
        return None
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    try:
        tree = ast.parse(line)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load_state_dict" and node.args:
            return ast.unparse(node.args[0])
    return None


def _common_prefix(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return None
    keys = list(value)
    if not all(isinstance(k, str) for k in keys) or not isinstance(value[keys[0]], torch.Tensor):
        return None
    for prefix in ("module.", "_orig_mod.", "model."):
        if all(k.startswith(prefix) for k in keys):
            return prefix
    return None


_CAT_SIZES = re.compile(r"Expected size (\d+) but got size (\d+) for tensor number (\d+)")


def _skip_connection(scene: Scene, exc: BaseException) -> LiveEvidence | None:
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
    return LiveEvidence(facts, [cause], SKIP_CODE)


def _working_size(scene: Scene) -> tuple[Any, str | None]:
    """The smallest H, W at least the input's that a meta-device forward accepts (tried for small models)."""
    root_frame = _forward_frame(scene, scene.model)
    inputs = frame_inputs(root_frame)
    if not inputs or sum(p.numel() for p in scene.model.parameters()) > 50_000_000:
        return None, None
    image = inputs[0][1]
    if image.dim() != 4:
        return image, None
    n, c, h, w = image.shape
    for multiple in (2, 4, 8, 16, 32, 64):
        size = (math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)
        if _runs_on_meta(scene.model, torch.empty(n, c, *size, device="meta")):
            return image, f"{n}x{c}x{size[0]}x{size[1]}"
    return image, None


def _runs_on_meta(model: nn.Module, x: torch.Tensor) -> bool:
    from torch.func import functional_call

    state = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    try:
        with torch.no_grad():
            functional_call(model, state, (x,))
    except Exception:
        return False
    return True


def _grey_input(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    module = scene.module
    if not isinstance(module, nn.modules.conv._ConvNd) or module.in_channels != 3:
        return None
    inputs = frame_inputs(failing_method_frame(scene))
    if not inputs or inputs[0][1].dim() < 3 or inputs[0][1].shape[-3] != 1:
        return None
    root_frame = _forward_frame(scene, scene.model)
    model_inputs = frame_inputs(root_frame)
    name = _name(scene, model_inputs[0][1], None) if model_inputs else None
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
    return LiveEvidence([], [cause], None)
