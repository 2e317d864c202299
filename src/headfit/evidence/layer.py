"""One layer against the shapes that reached it: Linear, Conv, BatchNorm, LayerNorm, MultiheadAttention,
pooling and Upsample. ``enrich`` calls ``layer_evidence`` for the module where a forward failed (in a
``check`` trace or a live program).
"""

from __future__ import annotations

import math

from torch import nn

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, product_expr, shape_str
from headfit.families import Evidence
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import layer_code


def layer_evidence(
    module: nn.Module,
    module_path: str,
    diagnosis: Diagnosis,
    input_shapes: list[list[int]] | None = None,
) -> Evidence:
    """What ``module`` expects against the first input that reached it (``input_shapes[0]``); fixes name
    the model ``model`` (``enrich`` writes the user's name)."""
    if not input_shapes:
        return Evidence()
    shape = list(input_shapes[0])
    target = module_expr("model", module_path)
    for kind, check in _CHECKS:
        if isinstance(module, kind):
            return check(module, module_path, target, shape)
    return Evidence()


def _linear(m: nn.Linear, path: str, target: str, shape: list[int]) -> Evidence:
    arrived = shape[-1] if shape else 0
    if arrived == m.in_features:
        return Evidence()
    facts = [f"`{module_name(path)}` expects {fmt(m.in_features)} input features; its input is {shape_str(shape)}"]
    if len(shape) >= 3 and math.prod(shape[1:]) == m.in_features:
        facts.append(f"{product_expr(shape[1:])} features per sample: the right count, not yet flattened")
        cause = Cause(
            f"the feature map reaches `{module_name(path)}` without a flatten",
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
            facts, [Cause(f"`{module_name(path)}` is a Linear but receives a feature map", 0.95, path, None, fix)]
        )
    bias = "" if m.bias is not None else ", bias=False"
    fix = f"{target} = nn.Linear({arrived}, {m.out_features}{bias})"
    cause = Cause(
        f"`{module_name(path)}` has `in_features` {m.in_features} but {fmt(arrived)} features arrive",
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
    if arrived != m.in_channels and is_channels_last(shape, m.in_channels):
        return _channels_last(m, path, shape, arrived)
    if arrived != m.in_channels:
        return _conv_channels(m, path, target, shape, arrived)
    return _conv_kernel(m, path, shape[channel_dim + 1 :])


def is_channels_last(shape: list[int], channels: int) -> bool:
    """Whether ``shape`` holds the wanted ``channels`` in its last axis as an image would: image
    channels (1 to 4), or a square H x W before them ([N, 64, 64, 32]); not a feature map whose width
    happens to equal ``channels`` ([N, 16, 32, 32] into a 32-channel conv)."""
    if len(shape) < 3 or shape[-1] != channels:
        return False
    return channels <= 4 or (shape[-3] == shape[-2] != shape[-1])


def channels_last_fix(shape: list[int], name: str = "x") -> str:
    """The permute that moves the channels of a channels-last image (or batch) to where a conv reads them;
    worded as the message rule words it, so the live cause replaces the message's."""
    if len(shape) == 3:  # one [H, W, C] image: torch reads it as an unbatched [C, H, W] with H as channels
        return (
            f"{name} = {name}.permute(2, 0, 1).unsqueeze(0)  # [H, W, C] -> [1, C, H, W]; transforms.ToTensor() does it"
        )
    order = "(0, 3, 1, 2)" if len(shape) == 4 else "(0, 4, 1, 2, 3)"
    return f"{name} = {name}.permute{order}  # HWC -> CHW; torchvision.transforms.ToTensor() does this for images"


def _channels_last(m, path: str, shape: list[int], arrived: int) -> Evidence:
    """The channels the conv wants are in the last axis: the producer (the image pipeline) is at fault,
    not the conv, so the permute is the cause (the message rule's "rebuild the conv" stays last)."""
    facts = [
        f"`{module_name(path)}` expects {m.in_channels} input channels in dim {len(shape) - len(m.kernel_size) - 1}; its input "
        f"{shape_str(shape)} has {arrived} there and {m.in_channels} in its last dim {len(shape) - 1}: "
        "the image is channels-last"
    ]
    causes = [
        Cause(
            f"the image reaches `{module_name(path)}` channels-last ({shape_str(shape)}): the channels are in the last dim",
            0.95,
            path,
            None,
            channels_last_fix(shape),
        ),
    ]
    return Evidence(facts, causes)


def _conv_channels(m, path: str, target: str, shape: list[int], arrived: int) -> Evidence:
    facts = [
        f"`{module_name(path)}` expects {m.in_channels} input channels (`in_channels`, groups={m.groups}); "
        f"its input {shape_str(shape)} has {arrived}"
    ]
    if arrived == 1 and m.in_channels == 3:
        facts.append("a 1-channel (grayscale) image reaches a 3-channel (RGB) stem")
        causes = [
            Cause(
                f"a grayscale image reaches `{module_name(path)}`, which takes 3 channels",
                0.9,
                path,
                "in_channels",
                "x = x.expand(-1, 3, -1, -1)  # repeat the grey channel before calling the model",
            ),
            Cause(
                f"keep 1-channel input and fold the RGB filters of `{module_name(path)}` into one",
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
        f"`{module_name(path)}` has `in_channels` {m.in_channels} but {arrived} channels arrive",
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
        f"`{module_name(path)}` needs at least {shape_str(reach)} pixels (kernel, dilation) but gets "
        f"{shape_str(spatial)} (+ padding {shape_str(list(padding))})"
    )
    cause = Cause(
        f"the feature map is too small for `{module_name(path)}` by the time it gets there",
        0.7,
        path,
        "kernel_size",
        "use larger input images (see `headfit sizes MODEL` for the sizes the model accepts)",
    )
    return Evidence([fact], [cause])


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, path: str, target: str, shape: list[int]) -> Evidence:
    if len(shape) < 2:
        return Evidence()
    if _unbatched(m, shape):
        return _missing_batch(m, path, shape)
    if shape[1] != m.num_features:
        fact = f"`{module_name(path)}` normalises {m.num_features} channels (`num_features`); its input {shape_str(shape)} has {shape[1]}"
        fix = f"{target} = nn.{type(m).__name__}({shape[1]})"
        return Evidence(
            [fact], [Cause(f"`{module_name(path)}` has `num_features` {m.num_features}", 0.85, path, "num_features", fix)]
        )
    values = shape[0] * math.prod(shape[2:])
    if m.training and values == 1:
        fact = (
            f"`{module_name(path)}` is in train mode and got {shape_str(shape)}: one value per channel, "
            "so the batch statistics are undefined"
        )
        causes = [
            Cause(
                f"a batch of one reaches `{module_name(path)}` in train mode (often the last, incomplete batch)",
                0.9,
                path,
                "training",
                "DataLoader(dataset, batch_size=..., shuffle=True, drop_last=True)",
            ),
            Cause(f"`{module_name(path)}` is in train mode at inference time", 0.5, path, "training", f"{target}.eval()"),
        ]
        return Evidence([fact], causes)
    return Evidence()


def _unbatched(m: nn.modules.batchnorm._BatchNorm, shape: list[int]) -> bool:
    """A BatchNorm2d/3d given one sample without its batch dim: [C, H, W] with C in dim 0."""
    batched = {"BatchNorm2d": 4, "BatchNorm3d": 5}.get(type(m).__name__)
    return batched is not None and len(shape) == batched - 1 and shape[0] == m.num_features


def _missing_batch(m, path: str, shape: list[int]) -> Evidence:
    fact = (
        f"`{module_name(path)}` normalises {m.num_features} channels; its input {shape_str(shape)} has them in dim 0: "
        "one sample without its batch dim (the convs before it accept unbatched input, BatchNorm does not)"
    )
    cause = Cause(
        f"the batch dimension is missing: a single sample {shape_str(shape)} reaches `{module_name(path)}`",
        0.95,
        path,
        None,
        "x = x.unsqueeze(0)  # add the batch dim",
    )
    return Evidence([fact], [cause])


def _layernorm(m: nn.LayerNorm, path: str, target: str, shape: list[int]) -> Evidence:
    expected = list(m.normalized_shape)
    got = shape[-len(expected) :]
    if got == expected:
        return Evidence()
    fact = f"`{module_name(path)}` normalises the last dims {shape_str(expected)}; its input {shape_str(shape)} ends in {shape_str(got)}"
    fix = f"{target} = nn.LayerNorm({got[0] if len(got) == 1 else tuple(got)})"
    return Evidence(
        [fact],
        [Cause(f"`{module_name(path)}` has `normalized_shape` {tuple(expected)}", 0.8, path, "normalized_shape", fix)],
    )


def _attention(m: nn.MultiheadAttention, path: str, target: str, shape: list[int]) -> Evidence:
    if not shape or shape[-1] == m.embed_dim:
        return Evidence()
    fact = f"`{module_name(path)}` has `embed_dim` {m.embed_dim}; the query {shape_str(shape)} has {shape[-1]} features"
    batch_first = ", batch_first=True" if m.batch_first else ""
    fix = f"{target} = nn.MultiheadAttention({shape[-1]}, {m.num_heads}{batch_first})"
    return Evidence([fact], [Cause(f"`{module_name(path)}` has `embed_dim` {m.embed_dim}", 0.8, path, "embed_dim", fix)])


def _pool(m: nn.Module, path: str, target: str, shape: list[int]) -> Evidence:
    kernel = getattr(m, "kernel_size", None)
    if kernel is None or len(shape) < 3:
        return Evidence()
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * 2
    spatial = shape[-len(kernel) :]
    if all(s >= k for s, k in zip(spatial, kernel, strict=False)):
        return Evidence()
    fact = f"`{module_name(path)}` pools with kernel {shape_str(list(kernel))} but the feature map is {shape_str(spatial)}"
    cause = Cause(
        f"the feature map is too small for `{module_name(path)}`",
        0.7,
        path,
        "kernel_size",
        "use larger input images (see `headfit sizes MODEL` for the sizes the model accepts)",
    )
    return Evidence([fact], [cause])


def _upsample(m: nn.Upsample, path: str, target: str, shape: list[int]) -> Evidence:
    fact = f"`{module_name(path)}` ({m.mode}, size={m.size}, scale_factor={m.scale_factor}) got {shape_str(shape)}"
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
