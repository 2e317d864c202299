"""HF128: a write into an existing tensor whose shape the value does not fit: an in-place op whose
result would be larger than its output (a grayscale image normalised with three-channel statistics),
a slice or mask assignment with another number of values, a ``copy_`` between sizes.

Unlike ``x = x + y``, an in-place ``x -= y`` / ``x[idx] = y`` / ``x.copy_(y)`` cannot grow ``x``: the
value must broadcast to the shape that already exists.
"""

from __future__ import annotations

import math
import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.frames import shows
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose

CODE = "HF128"

_OUTPUT = re.compile(
    r"output with shape \[(?P<out>[\d, ]*)\] doesn't match the broadcast shape \[(?P<bcast>[\d, ]*)\]?"
)
_VALUE = re.compile(
    r"shape mismatch: value tensor of shape \[(?P<value>[\d, ]*)\] cannot be broadcast to indexing result of "
    r"shape \[(?P<slot>[\d, ]*)\]?"
)
_EXPAND = re.compile(
    r"The expanded size of the tensor \((?P<want>-?\d+)\) must match the existing size \((?P<have>\d+)\) at "
    r"non-singleton dimension (?P<dim>\d+)\.\s+Target sizes: \[(?P<target>[-\d, ]*)\]\.\s+Tensor sizes: "
    r"\[(?P<sizes>[\d, ]*)\]?"
)
# torch < 0.4 (TH copy_): "inconsistent tensor size, expected tensor [3 x 224 x 224] and src [1 x 224 x 224] to
# have the same number of elements, but got 150528 and 50176 elements respectively"
_INCONSISTENT = re.compile(
    r"inconsistent tensor size, expected tensor \[(?P<dst>[\d, ]*)\] and src \[(?P<src>[\d, ]*)\] to have the "
    r"same number of elements"
)
_ASSIGNMENT = re.compile(r"\]\s*=(?!=)|\.copy_\(|\bindex_put_?\(|\.masked_scatter_?\(")
IMAGE_CHANNELS = (1, 3, 4)


@rule(CODE, priority=55, needs="doesn't match the broadcast shape")
def in_place_output(parsed: ParsedError) -> Diagnosis | None:
    m = _OUTPUT.search(parsed.message)
    if not m:
        return None
    out, bcast = parse_ints(m["out"]), parse_ints(m["bcast"])
    facts = [
        f"an in-place op writes into a {shape_str(out)} tensor, but the operands broadcast to {shape_str(bcast)}: "
        "in place, the output cannot grow"
    ]
    differ = [i for i, (a, b) in enumerate(zip(out, bcast, strict=False)) if a != b]
    causes = []
    grey = (
        len(out) == len(bcast) >= 3
        and differ == [len(out) - 3]
        and out[len(out) - 3] == 1
        and bcast[len(out) - 3] in (3, 4)
    )
    if grey:
        channels = bcast[len(out) - 3]
        facts.append(
            f"dim {len(out) - 3} is the channel axis: a 1-channel (grayscale) image meets {channels}-channel statistics"
        )
        normalize = shows(parsed, "normalize") is not None
        if normalize:
            facts.append("traceback shows torchvision's Normalize: `tensor.sub_(mean).div_(std)` is in place")
        causes.append(
            Cause(
                f"a grayscale image goes through a Normalize with {channels} means and stds (written for RGB)",
                0.85,
                fix="transforms.Normalize((0.5,), (0.5,))  # one mean and std per channel of a 1-channel image; "
                "or make the images RGB first: transforms.Grayscale(num_output_channels=3) / img.convert('RGB')",
            )
        )
    causes.append(
        Cause(
            "the in-place op's left side is smaller than the result",
            0.5 if not causes else 0.3,
            fix="x = x - y  # out of place: the result may broadcast to the larger shape",
        )
    )
    return diagnose(
        CODE,
        parsed,
        f"an in-place op cannot write a {shape_str(bcast)} result into a {shape_str(out)} tensor",
        facts,
        causes,
    )


@rule(CODE, priority=55, needs="cannot be broadcast to indexing result of shape")
def indexed_assignment(parsed: ParsedError) -> Diagnosis | None:
    m = _VALUE.search(parsed.message)
    if not m:
        return None
    value, slot = parse_ints(m["value"]), parse_ints(m["slot"])
    facts = [f"`x[index] = value`: the index selects {shape_str(slot)}, the value is {shape_str(value)}"]
    if len(value) == len(slot) == 1:
        facts.append(f"a mask or index list picks {slot[0]} elements; {value[0]} values were given")
    causes = [
        Cause(
            "the index (a boolean mask, a list of positions) was computed from another tensor than the value",
            0.6,
            fix="x[mask] = value[mask]  # select the values with the same mask; assert mask.sum() == value.numel()",
        )
    ]
    if len(value) >= 2 and value == slot[::-1]:
        facts.append(f"{shape_str(value)} is {shape_str(slot)} reversed: the value is transposed")
        causes.insert(
            0,
            Cause(
                "the value's axes are in the other order than the slots the index selects (advanced indexing puts the "
                "indexed axis first)",
                0.8,
                fix="x[..., idx] = value.transpose(0, 1)  # or value.T: match the indexing result's shape",
            ),
        )
    return diagnose(
        CODE,
        parsed,
        f"a {shape_str(value)} value cannot fill the {shape_str(slot)} that the index selects",
        facts,
        causes,
    )


# before HF108's expand rule (priority 60): the same words come from a slice assignment
@rule(CODE, priority=58, needs="The expanded size of the tensor")
def slice_assignment(parsed: ParsedError) -> Diagnosis | None:
    m = _EXPAND.search(parsed.message)
    line = _assignment_line(parsed)
    if not m or line is None:
        return None
    target, sizes, dim = parse_ints(m["target"]), parse_ints(m["sizes"]), int(m["dim"])
    facts = [
        f"traceback shows an assignment: `{line}`",
        f"the slice on the left is {shape_str(target)}, the value on the right {shape_str(sizes)}: they differ in dim {dim} "
        f"({target[dim] if dim < len(target) else '?'} vs {sizes[dim] if dim < len(sizes) else '?'})",
    ]
    causes = [
        Cause(
            "the slice and the value were sized from different tensors (a crop, a padding, a per-image count)",
            0.65,
            fix=f"x[...] = value[..., :{target[dim] if dim < len(target) else 'n'}]  # or make the slice as wide as the value",
        )
    ]
    return diagnose(
        CODE,
        parsed,
        f"a {shape_str(sizes)} value does not fit the {shape_str(target)} slice it is assigned to",
        facts,
        causes,
    )


@rule(CODE, priority=55, needs="inconsistent tensor size, expected tensor [")
def copy_sizes(parsed: ParsedError) -> Diagnosis | None:
    m = _INCONSISTENT.search(parsed.message)
    if not m:
        return None
    dst, src = parse_ints(m["dst"]), parse_ints(m["src"])
    facts = [
        f"copy into {shape_str(dst)} ({fmt(math.prod(dst))} elements) from {shape_str(src)} ({fmt(math.prod(src))})"
    ]
    causes = []
    if len(dst) == len(src) == 3 and dst[1:] == src[1:] and {dst[0], src[0]} <= set(IMAGE_CHANNELS):
        causes.append(
            Cause(
                f"a {src[0]}-channel image copied where a {dst[0]}-channel one belongs (grayscale among RGB images)",
                0.8,
                fix="Image.open(path).convert('RGB')  # every image with 3 channels",
            )
        )
    causes.append(
        Cause("the destination was allocated for another shape", 0.4, fix="print(dst.shape, src.shape)")
    )
    return diagnose(CODE, parsed, f"cannot copy {shape_str(src)} into {shape_str(dst)}", facts, causes)


def _assignment_line(parsed: ParsedError) -> str | None:
    """The innermost frame's source when it assigns into an indexed tensor (``x[:, :3] = y``)."""
    for frame in reversed(parsed.frames):
        if frame.source:
            return frame.source if _ASSIGNMENT.search(frame.source) else None
    return None
