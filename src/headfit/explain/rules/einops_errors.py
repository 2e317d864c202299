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
# einops < 0.7 / >= 0.7 wordings
_RANK = re.compile(
    r"Wrong shape: expected (\d+) dims\. Received (\d+)-dim tensor|Expected (\d+) dimensions, got (\d+)"
)
_UNEQUAL = re.compile(r"Shape mismatch, (\d+) != (\d+)")
_TOKEN = re.compile(r"\(([^()]*)\)|(\.\.\.|…|\w+)")
_ONE_SIDE = re.compile(r"Identifiers only on one side of expression \(should be on both\): (\{[^}]*\})")
_NEW_AXES = re.compile(r"Specify sizes for new axes in repeat: (\{[^}]*\})")


@rule(CODE, priority=60, needs='-reduction pattern "')
def einops_pattern(parsed: ParsedError) -> Diagnosis | None:
    m = _HEADER.search(parsed.message)
    if not m:
        return None
    op, pattern, shape, info, reason = m[1], m[2], parse_ints(m[3]), m[4], m[5].strip()
    facts = [f'`{op}` pattern "{pattern}" on a tensor of shape {shape_str(shape)} (given sizes: {info})']
    sizes = {name: int(v) for name, v in re.findall(r"'(\w+)': (\d+)", info)}
    summary, causes = _reason(reason, _left_axes(pattern, len(shape)), shape, sizes, facts)
    return diagnose(CODE, parsed, summary, facts, causes)


def _left_axes(pattern: str, rank: int) -> list[list[str]] | None:
    """The names on the left of ``pattern``, one list per input axis (``(h ph)`` -> ``["h", "ph"]``), or
    None when an ellipsis makes the mapping to the tensor's axes unknown."""
    left = pattern.split("->")[0]
    axes = [
        group.split() if group is not None and tok == "" else [tok] for group, tok in _TOKEN.findall(left)
    ]
    if any(name in ("...", "…") for axis in axes for name in axis) or len(axes) != rank:
        return None
    return axes


def _reason(
    reason: str, axes: list[list[str]] | None, shape: list[int], sizes: dict[str, int], facts: list[str]
) -> tuple[str, list[Cause]]:
    if m := _DIVIDE.search(reason):
        patches = axes is not None and len(axes) >= 2 and len(axes[-1]) > 1 and len(axes[-2]) > 1
        group = _grouped_axis(axes, shape, int(m[1]))
        return _indivisible(int(m[1]), int(m[2]), shape, facts, group, patches)
    if m := _UNEQUAL.search(reason):
        return _unequal(int(m[1]), int(m[2]), axes, shape, sizes, facts)
    if m := _RANK.search(reason):
        want, got = int(m[1] or m[3]), int(m[2] or m[4])
        facts.append(f"the left side of the pattern names {want} axes, the tensor has {got}")
        if want == got + 1:
            fix = "x = x.unsqueeze(0)  # add the batch axis"
        elif got == want + 1:
            fix = f"name all {got} axes on the left, or skip this rearrange: the tensor may already be in the layout it makes"
        else:
            fix = "write one name per axis on the left side"
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


def _grouped_axis(
    axes: list[list[str]] | None, shape: list[int], length: int
) -> tuple[int, list[str]] | None:
    """The input axis of ``length`` that the pattern decomposes (a group of several names), with its names."""
    if axes is None:
        return None
    found = [(i, names) for i, names in enumerate(axes) if shape[i] == length and len(names) > 1]
    return found[0] if len(found) == 1 else None


def _indivisible(
    length: int,
    chunk: int,
    shape: list[int],
    facts: list[str],
    group: tuple[int, list[str]] | None,
    patches: bool,
) -> tuple[str, list[Cause]]:
    """``patches``: the pattern cuts the last two axes into patches, ``(h ph) (w pw)``: an image size."""
    facts.append(f"{length} / {chunk} = {length / chunk:.4g} (not whole)" if chunk else f"chunks of {chunk}")
    if group is not None:
        facts.append(f"axis {group[0]} of the input ({' '.join(group[1])}) has length {length}")
    else:
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
    summary = f"an axis of length {length} cannot be cut into chunks of {chunk}"
    if group is not None and not (patches and group[0] >= len(shape) - 2):  # no image to resize
        index, names = group
        return summary, [
            Cause(
                f"axis {index} was not built as ({' '.join(names)}): its {length} is not a multiple of {chunk}",
                0.65,
                fix=f"assert x.shape[{index}] % {chunk} == 0, x.shape  # where the tensor is made; or pass the size that divides {length}",
            )
        ]
    causes = [
        Cause(
            f"the image size is not a multiple of the patch/chunk size {chunk}",
            0.7,
            fix=f"transforms.Resize(({near}, {near}))  # or ({far}, {far}); or pad: F.pad(x, (0, (-x.shape[-1]) % {chunk}, 0, (-x.shape[-2]) % {chunk}))",
        )
    ]
    return summary, causes


def _unequal(
    actual: int,
    expected: int,
    axes: list[list[str]] | None,
    shape: list[int],
    sizes: dict[str, int],
    facts: list[str],
) -> tuple[str, list[Cause]]:
    """``Shape mismatch, 36288 != 36278``: an axis is not the product of the sizes given for its names."""
    group = _grouped_axis(axes, shape, actual)
    if group is not None and all(name in sizes for name in group[1]):
        index, names = group
        product = " x ".join(f"{name}={sizes[name]}" for name in names)
        facts.append(f"axis {index} ({' '.join(names)}) has {actual:,}, but {product} = {expected:,}")
        for name in names:
            rest = expected // sizes[name] if sizes[name] else 0
            if rest and actual % rest == 0:
                facts.append(f"{actual:,} = {actual // rest} x {rest:,}: `{name}` would be {actual // rest}")
    else:
        facts.append(f"an axis has {actual:,} but the sizes given for it multiply to {expected:,}")
    diff = actual - expected
    return f"an axis has {actual:,} elements, not the {expected:,} the pattern's sizes give", [
        Cause(
            f"a size passed to the pattern is stale: it accounts for {expected:,} of {actual:,} ({diff:+,})",
            0.6,
            fix="compute the sizes from the tensor: pass one fewer size and let einops infer it",
        )
    ]
