"""HF113: a conv/pool window larger than the feature map that reaches it (the image is too small for the
network's downsampling)."""

from __future__ import annotations

import math
import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints
from headfit.explain.engine import rule
from headfit.explain.parse import Frame, ParsedError
from headfit.explain.rules._support import diagnose

CODE = "HF113"
STRIDES = (8, 16, 32)  # output strides of the last stages of common backbones (8: CIFAR-style ResNets)

# pasted messages break lines after the periods, and retyped ones write `256*56*52` or `size :(`
_KERNEL = re.compile(
    r"Calculated padded input size per channel: \(([\d x]+)\)\.\s*Kernel size: \(([\d x]+)\)?"
)
_OUTPUT = re.compile(
    r"Given input size\s*:\s*\(([\d x*]+)\)\.\s*Calculated output size\s*:\s*\(([-\d x*]+)\)\.\s*"
    r"Output size is too small"
)
_INVALID_OUTPUT = re.compile(r"(\w+)\(\) Invalid computed output size: (-?\d+)")


@rule(CODE, priority=60, needs="Calculated padded input size per channel")
def kernel_too_large(parsed: ParsedError) -> Diagnosis | None:
    m = _KERNEL.search(parsed.message)
    if not m:
        return None
    size, kernel = parse_ints(m[1]), parse_ints(m[2])
    if not size or len(size) != len(kernel):
        return None
    facts = [f"the padded feature map is {_dims(size)} but the kernel is {_dims(kernel)}"]
    scale = max(math.ceil(k / s) if s > 0 else k for s, k in zip(size, kernel, strict=True))
    if scale > 1:  # torch raises only when the kernel is larger; an edited paste may say otherwise
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
    causes: list[Cause] = []
    if m:
        given, out = parse_ints(m[1]), parse_ints(m[2])
        if len(given) < 2 or len(given) != len(out):
            return None
        spatial = given[1:]
        facts = [
            f"the feature map reaching this layer is {_dims(spatial)} ({given[0]} channels); its window and stride give {_dims(out[1:])}",
        ]
        need = min(spatial) + 1
        if all(
            o < 0 for o in out[1:]
        ):  # out = in - k + 1 at stride 1 without padding: the window is in - out + 1
            windows = [s - o + 1 for s, o in zip(spatial, out[1:], strict=True)]
            facts.append(
                f"an output of {out[1]} means a window of {spatial[0]} - ({out[1]}) + 1 = {windows[0]} at stride 1 "
                f"(e.g. the nn.AvgPool2d({windows[0]}, stride=1) of ImageNet ResNets before global pooling)"
            )
            need = max(windows)
        pairs = list(zip(spatial, out[1:], strict=True))
        fits = [s for s, o in pairs if o >= 1]
        short = [s for s, o in pairs if o < 1]
        if fits and short:
            need = _window_bound(pairs, max(short))
            facts.append(
                f"the window fits the side(s) of {_sizes(fits)} but not {_sizes(short)}: "
                f"it is larger than {max(short)} and at most {need}"
            )
            if min(short) * 2 >= max(fits):  # a nearly square map: not a too-small image
                causes.append(_one_sided_window_cause(short, fits))
    else:
        m = _INVALID_OUTPUT.search(parsed.message)
        if not m:
            return None
        facts = [f"`{m[1]}` computed an output length of {m[2]}: its window is longer than the input"]
        need = 2
        spatial = []
    window = _window_in_source(parsed)
    if window is not None:
        frame, k = window
        facts.append(f"traceback shows the window: `{frame.source}` takes {k}x{k}")
        need = max(need, k)
        facts.append(f"this layer needs a map of at least {need} px per side (its window)")
    else:
        facts.append(f"this layer needs a larger map (at least {need} px per side, more for a larger window)")
    if need <= max(STRIDES) // 2:  # a late, strided feature map: say what input size gives it
        facts.extend(
            f"at stride {s} that is an input of at least {s}*{need} = {s * need} px per side" for s in STRIDES
        )
    summary = (
        f"the {_dims(spatial)} feature map is too small for this pooling/conv window"
        if spatial
        else "the input is too short for this pooling window"
    )
    return diagnose(CODE, parsed, summary, facts, causes + _small_input_causes(need))


_POOL_CALL = re.compile(
    r"(?:avg|max)_pool[123]d\(\s*[\w.\[\]]+\s*,\s*(?:kernel_size\s*=\s*)?\(?(\d+)"
    r"|(?:AvgPool|MaxPool)[123]d\(\s*(?:kernel_size\s*=\s*)?\(?(\d+)"
)


def _window_in_source(parsed: ParsedError) -> tuple[Frame, int] | None:
    """A pooling window written as a number in a frame's source (``F.avg_pool2d(out, 4)``, ``nn.AvgPool2d(7)``)."""
    for frame in reversed(parsed.frames):
        m = _POOL_CALL.search(frame.source or "")
        if m:
            return frame, int(m[1] or m[2])
    return None


def _window_bound(pairs: list[tuple[int, int]], longer_than: int) -> int:
    """The largest square window that gives each fitting side its output, with a pooling's default stride
    (= window): ``out = size // window``, so ``window <= size // out``; the longest fitting side when the
    sides disagree (another stride)."""
    bound = min(size // out for size, out in pairs if out >= 1)
    return bound if bound > longer_than else max(size for size, out in pairs if out >= 1)


def _one_sided_window_cause(short: list[int], fits: list[int]) -> Cause:
    """A window that fits one side of the map and not the other, which is nearly as long: the window was
    sized from one side (``kernel_size=x.size(2)``) or for square inputs."""
    return Cause(
        f"the map is not square ({_sizes(short)} against {_sizes(fits)}) and the window was sized from its "
        "longer side or for square inputs",
        0.7,
        fix="F.adaptive_avg_pool2d(x, 1)  # instead of F.avg_pool2d(x, x.size(2)): any height and width",
    )


def _sizes(sizes: list[int]) -> str:
    return " and ".join(map(str, sizes))


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
