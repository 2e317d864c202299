"""HF113: a conv/pool window larger than the feature map that reaches it (the image is too small for the
network's downsampling)."""

from __future__ import annotations

import math
import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose

CODE = "HF113"
STRIDES = (16, 32)  # output strides of the last stages of common backbones

_KERNEL = re.compile(
    r"Calculated padded input size per channel: \(([\d x]+)\)\. Kernel size: \(([\d x]+)\)\. "
    r"Kernel size can't be greater than actual input size"
)
_OUTPUT = re.compile(
    r"Given input size: \(([\dx]+)\)\. Calculated output size: \(([-\dx]+)\)\. Output size is too small"
)
_INVALID_OUTPUT = re.compile(r"(\w+)\(\) Invalid computed output size: (-?\d+)")


@rule(CODE, priority=60, needs="Kernel size can't be greater than actual input size")
def kernel_too_large(parsed: ParsedError) -> Diagnosis | None:
    m = _KERNEL.search(parsed.message)
    if not m:
        return None
    size, kernel = parse_ints(m[1]), parse_ints(m[2])
    if not size or len(size) != len(kernel):
        return None
    facts = [f"the padded feature map is {_dims(size)} but the kernel is {_dims(kernel)}"]
    scale = max(math.ceil(k / s) if s > 0 else k for s, k in zip(size, kernel, strict=True))
    facts.append(f"the input must be about {scale}x larger (per side) for this layer to fit")
    facts.extend(
        f"if this layer sits at stride {s}, the input needs at least {s}*{max(kernel)} = {s * max(kernel)} px per side"
        for s in STRIDES
    )
    return diagnose(
        CODE,
        parsed,
        f"a kernel of size {_dims(kernel)} does not fit the {_dims(size)} feature map that reaches it",
        facts,
        _small_input_causes(max(kernel)),
    )


@rule(CODE, priority=60, needs=("Output size is too small", "Invalid computed output size"))
def output_too_small(parsed: ParsedError) -> Diagnosis | None:
    m = _OUTPUT.search(parsed.message)
    if m:
        given, out = parse_ints(m[1]), parse_ints(m[2])
        if len(given) < 2 or len(given) != len(out):
            return None
        spatial = given[1:]
        facts = [
            f"the feature map reaching this layer is {_dims(spatial)} ({given[0]} channels); its window and stride give {_dims(out[1:])}",
        ]
        need = min(spatial) + 1
    else:
        m = _INVALID_OUTPUT.search(parsed.message)
        if not m:
            return None
        facts = [f"`{m[1]}` computed an output length of {m[2]}: its window is longer than the input"]
        need = 2
        spatial = []
    facts.append(f"this layer needs a larger map (at least {need} px per side, more for a larger window)")
    facts.extend(
        f"at stride {s} that is an input of at least {s}*{need} = {s * need} px per side" for s in STRIDES
    )
    summary = (
        f"the {_dims(spatial)} feature map is too small for this pooling/conv window"
        if spatial
        else "the input is too short for this pooling window"
    )
    return diagnose(CODE, parsed, summary, facts, _small_input_causes(need))


def _small_input_causes(window: int) -> list[Cause]:
    return [
        Cause(
            "the images are smaller than the network was designed for (e.g. 32x32 CIFAR images into an ImageNet backbone that downsamples 32x)",
            0.6,
            fix=f"transforms.Resize(({32 * window}, {32 * window}))  # or upsample: F.interpolate(x, scale_factor=...)",
        ),
        Cause(
            "a fixed-size pooling (nn.AvgPool2d(7), nn.MaxPool2d) assumes one input size",
            0.45,
            fix="nn.AdaptiveAvgPool2d(1)  # any input size; AdaptiveAvgPool2d((7, 7)) for a VGG-style classifier",
        ),
    ]


def _dims(dims: list[int]) -> str:
    return "x".join(map(str, dims))
