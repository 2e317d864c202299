"""HF122: einops ``rearrange`` / ``reduce`` / ``repeat`` patterns that do not fit the tensor."""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, nearest_multiples

CODE = "HF122"

_HEADER = re.compile(
    r"Error while processing (\w+)-reduction pattern \"([^\"]*)\"\.\s*Input tensor shape: torch\.Size\(\[([\d, ]*)\]\)\.\s*"
    r"Additional info: (\{[^}]*\})\.\s*(.*)",
    re.S,
)
_DIVIDE = re.compile(r"can't divide axis of length (\d+) in chunks of (\d+)")
_RANK = re.compile(r"Wrong shape: expected (\d+) dims\. Received (\d+)-dim tensor")
_ONE_SIDE = re.compile(r"Identifiers only on one side of expression \(should be on both\): (\{[^}]*\})")
_NEW_AXES = re.compile(r"Specify sizes for new axes in repeat: (\{[^}]*\})")


@rule(CODE, priority=60, needs='-reduction pattern "')
def einops_pattern(parsed: ParsedError) -> Diagnosis | None:
    m = _HEADER.search(parsed.message)
    if not m:
        return None
    op, pattern, shape, info, reason = m[1], m[2], parse_ints(m[3]), m[4], m[5].strip()
    facts = [f'`{op}` pattern "{pattern}" on a tensor of shape {shape_str(shape)} (given sizes: {info})']
    summary, causes = _reason(reason, shape, facts)
    return diagnose(CODE, parsed, summary, facts, causes)


def _reason(reason: str, shape: list[int], facts: list[str]) -> tuple[str, list[Cause]]:
    if m := _DIVIDE.search(reason):
        return _indivisible(int(m[1]), int(m[2]), shape, facts)
    if m := _RANK.search(reason):
        want, got = int(m[1]), int(m[2])
        facts.append(f"the left side of the pattern names {want} axes, the tensor has {got}")
        fix = (
            "x = x.unsqueeze(0)  # add the batch axis"
            if want == got + 1
            else "write one name per axis on the left side"
        )
        return f"the pattern expects a {want}D tensor but got {got}D", [
            Cause("the pattern's axes do not match the tensor's rank", 0.7, fix=fix)
        ]
    if m := _ONE_SIDE.search(reason):
        return f"axes {m[1]} appear on one side only", [
            Cause(
                "a typo in an axis name, or a new axis in `rearrange` (which cannot create axes)",
                0.6,
                fix="use einops.repeat for new axes, with their size: repeat(x, 'b c -> b c k', k=4)",
            )
        ]
    if m := _NEW_AXES.search(reason):
        sizes = ", ".join(f"{name}=N" for name in re.findall(r"'(\w+)'", m[1]))
        return f"`repeat` needs the size of the new axes {m[1]}", [
            Cause(
                "the new axes' sizes were not given",
                0.75,
                fix=f"repeat(x, pattern, {sizes})  # N: the size you want",
            )
        ]
    return "the einops pattern does not fit the tensor", [
        Cause(
            reason or "the pattern and the tensor disagree",
            0.4,
            fix="print(x.shape) and compare it with the pattern's left side",
        )
    ]


def _indivisible(length: int, chunk: int, shape: list[int], facts: list[str]) -> tuple[str, list[Cause]]:
    facts.append(f"{length} / {chunk} = {length / chunk:.4g} (not whole)" if chunk else f"chunks of {chunk}")
    axes = [i for i, s in enumerate(shape) if s == length]
    if axes:
        facts.append(f"axis {', '.join(map(str, axes))} of the input has length {length}")
    if chunk <= 0:
        return f"cannot split an axis of length {length} into chunks of {chunk}", []
    lower, upper = nearest_multiples(length, chunk)
    near, far = (lower, upper) if length - lower <= upper - length else (upper, lower)
    facts.append(
        f"the nearest lengths that divide: {lower} = {lower // chunk} x {chunk} and {upper} = {upper // chunk} x {chunk}"
    )
    causes = [
        Cause(
            f"the image size is not a multiple of the patch/chunk size {chunk}",
            0.7,
            fix=f"transforms.Resize(({near}, {near}))  # or ({far}, {far}); or pad: F.pad(x, (0, (-x.shape[-1]) % {chunk}, 0, (-x.shape[-2]) % {chunk}))",
        )
    ]
    return f"an axis of length {length} cannot be cut into chunks of {chunk}", causes
