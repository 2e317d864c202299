"""HF108: two tensors whose sizes must agree do not: broadcasting, ``torch.cat``, ``torch.stack``, ``expand``,
and a ``split`` whose sizes do not add up to the tensor's."""

from __future__ import annotations

import re
from dataclasses import dataclass

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.frames import shows
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import Broadcast, diagnose, is_power_of_two, parse_broadcast, ratio_fact

CODE = "HF108"

_CAT = re.compile(
    r"Sizes of tensors must match except in dimension (\d+)\. Expected size (\d+) but got size (\d+) "
    r"for tensor number (\d+)"
)
# torch <= 1.6: "... except in dimension 1. Got 24 and 23 in dimension 2" (cat dim, then the dim that differs)
_OLD_CAT = re.compile(
    r"Sizes of tensors must match except in dimension (\d+)\. Got (\d+) and (\d+) in dimension (\d+)"
)
# torch 1.7/1.8: "... except in dimension 2. Got 70 and 71 (The offending index is 0)": here the dimension named
# is the one whose sizes differ, and the cat dimension is not said
_OFFENDING_CAT = re.compile(
    r"Sizes of tensors must match except in dimension (\d+)\. Got (\d+) and (\d+) \(The offending index is (\d+)\)"
)
_STACK = re.compile(
    r"stack expects each tensor to be equal size, but got \[([\d, ]*)\] at entry (\d+) and \[([\d, ]*)\] at entry (\d+)"
)
_SPLIT = re.compile(
    r"split_with_sizes expects split_sizes to sum exactly to (\d+) \(input tensor's size at dimension (-?\d+)\), "
    r"but got split_sizes=\[([-\d, ]*)\]"
)
_EXPAND = re.compile(
    r"The expanded size of the tensor \((-?\d+)\) must match the existing size \((\d+)\) at non-singleton "
    r"dimension (\d+)\.\s+Target sizes: \[([-\d, ]*)\]\.\s+Tensor sizes: \[([\d, ]*)\]"
)


@rule(CODE, priority=60, needs=("must match the size of tensor b", "Attempting to broadcast a dimension"))
def broadcast_mismatch(parsed: ParsedError) -> Diagnosis | None:
    found = parse_broadcast(parsed.message)
    if found is None:
        return None
    a, b, dim = found.a, found.b, found.dim
    facts = [
        f"at dimension {dim}, tensor a has size {a} and tensor b has size {b}; broadcasting only stretches a size of 1"
    ]
    if found.shape_a is not None and found.shape_b is not None:
        facts.append(f"shapes: {shape_str(found.shape_a)} and {shape_str(found.shape_b)}")
    ratio = ratio_fact(max(a, b), min(a, b))
    if ratio:
        facts.append(ratio)
    return diagnose(
        CODE,
        parsed,
        f"tensors of sizes {a} and {b} cannot be combined at dimension {dim}",
        facts,
        _broadcast_causes(found),
    )


def _broadcast_causes(found: Broadcast) -> list[Cause]:
    a, b, dim = found.a, found.b, found.dim
    big, small = max(a, b), min(a, b)
    causes = [
        Cause(
            f"the two operands were built for different shapes: print both before the failing line and reshape the one that is off (a size-1 axis broadcasts, `{small}` vs `{big}` does not)",
            0.3,
            fix="print(a.shape, b.shape)  # then e.g. b = b.unsqueeze(-1) or b = b.view(a.shape)",
        )
    ]
    channels = next((c for c in (a, b) if c in (1, 3, 4)), None)
    if dim == 0 and channels is not None and big >= 16:
        causes.append(
            Cause(
                f"an image with its channels last ([H, W, {channels}]) meets a per-channel [{channels}, 1, 1] tensor "
                f"(a mean or std): dim 0 holds {big} rows where {channels} channels belong",
                0.55,
                fix="x = x.permute(2, 0, 1)  # [H, W, C] -> [C, H, W]; for a batch x.permute(0, 3, 1, 2)",
            )
        )
    if dim == 0:
        causes.append(
            Cause(
                f"the batch sizes differ ({a} vs {b}): a tensor made with a fixed batch size meets the smaller last batch",
                0.4 if len(causes) > 1 else 0.5,
                fix="size tensors from the data (`x.size(0)`), or DataLoader(..., drop_last=True)",
            )
        )
    elif dim is not None and dim >= 2 and big == small + 1 and small > 0:
        causes.append(
            Cause(
                f"an odd size rounded by a 2x down- and upsampling: {_unet_skip(a, b)}; an add/mul joins two paths "
                "(a residual, an FPN top-down sum) that rounded it differently",
                0.6,
                fix="x = F.interpolate(x, size=skip.shape[-2:]) before the add, or use input sizes that are multiples "
                "of the network's stride (32)",
            )
        )
    elif dim == 1:
        causes.append(
            Cause(
                f"the class/channel axis differs: one side has {a} columns, the other {b} (a head for {a} classes against one-hot targets for {b}, or the reverse)",
                0.45,
                fix=f"make both sides use the same class count, e.g. target = F.one_hot(target, num_classes={a}).float()",
            )
        )
    elif small > 0 and big % small == 0 and is_power_of_two(big // small):
        causes.append(
            Cause(
                f"a spatial size is {big // small}x smaller on one side: the network's output stride (segmentation logits at 1/{big // small} resolution against full-size masks)",
                0.6,
                fix="logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=False)",
            )
        )
    return causes


@dataclass(frozen=True)
class CatMismatch:
    """A failed ``torch.cat``: sizes ``expected`` and ``got`` differ outside the cat dimension."""

    cat_dim: int | None  # None: the message does not say (torch 1.7/1.8)
    expected: int
    got: int
    index: int | None  # the offending tensor's position in the list
    differing_dim: int | None = None


def parse_cat(message: str) -> CatMismatch | None:
    """Read every torch wording of a ``torch.cat`` size mismatch."""
    m = _CAT.search(message)
    if m:
        return CatMismatch(int(m[1]), int(m[2]), int(m[3]), int(m[4]))
    m = _OLD_CAT.search(message)
    if m:
        return CatMismatch(int(m[1]), int(m[2]), int(m[3]), None, int(m[4]))
    m = _OFFENDING_CAT.search(message)
    if m:
        return CatMismatch(None, int(m[2]), int(m[3]), int(m[4]), int(m[1]))
    return None


def _cat_facts(cat: CatMismatch) -> list[str]:
    where = f" in dimension {cat.differing_dim}" if cat.differing_dim is not None else ""
    if cat.cat_dim is None:
        first = f"`torch.cat` needs equal sizes in every dimension but the one it joins; dimension {cat.differing_dim} differs"
    else:
        first = f"`torch.cat` joins along dimension {cat.cat_dim}; every other dimension must be equal"
    if cat.index is None:
        return [first, f"one tensor has size {cat.expected} where another has {cat.got}{where}"]
    if cat.cat_dim is None:
        return [
            first,
            f"sizes {cat.expected} and {cat.got}{where} (tensor {cat.index} of the list is the odd one)",
        ]
    return [first, f"tensor 0 has size {cat.expected} where tensor {cat.index} has size {cat.got}{where}"]


@rule(CODE, priority=60, needs="Sizes of tensors must match except in dimension")
def cat_mismatch(parsed: ParsedError) -> Diagnosis | None:
    cat = parse_cat(parsed.message)
    if cat is None:
        return None
    cat_dim, expected, got = cat.cat_dim, cat.expected, cat.got
    facts = _cat_facts(cat)
    causes = [
        Cause(
            "the tensors come from different places in the network (or different inputs) and were never resized to each other",
            0.3,
            fix="print([t.shape for t in tensors])  # then resize or crop the odd one out",
        )
    ]
    if cat_dim == 0 and cat.differing_dim is not None and (cat.index is None or shows(parsed, "collate")):
        return _old_stack(parsed, cat)
    skip = _unet_skip(expected, got)
    channel_cat = cat_dim == 1 or cat_dim is None and (cat.differing_dim or 0) >= 2
    if channel_cat and skip is not None:
        facts.append(skip)
        causes.append(
            Cause(
                "a U-Net style skip connection (or two branches that downsample differently): an odd feature size "
                "was rounded by a 2x downsampling, so the upsampled map is 1 pixel off the skip",
                0.7,
                fix="x = F.interpolate(x, size=skip.shape[-2:]) before the cat, or pad the input to a multiple of 2**depth: "
                "x = F.pad(x, (0, (-x.shape[-1]) % 16, 0, (-x.shape[-2]) % 16))  # 16 = 2**4 for 4 downsamplings",
            )
        )
    return diagnose(
        CODE,
        parsed,
        f"`torch.cat` got tensors of sizes {expected} and {got} outside the cat dimension"
        + (f" {cat_dim}" if cat_dim is not None else ""),
        facts,
        causes,
    )


def _old_stack(parsed: ParsedError, cat: CatMismatch) -> Diagnosis:
    """torch < 1.5 stacked by concatenating unsqueezed tensors along a new dimension 0, so ``torch.stack``
    (and the DataLoader's default collate) failed with the cat wording; dimension d of the message is
    dimension d - 1 of the samples."""
    sample_dim = (cat.differing_dim or 1) - 1
    facts = [
        "`Sizes of tensors must match except in dimension 0` with the old `Got A and B in dimension d` is how torch "
        "< 1.5 worded `torch.stack`: the tensors are stacked along a new dimension 0",
        f"two samples differ in their dimension {sample_dim}: {cat.expected} vs {cat.got}",
    ]
    collate = shows(parsed, "collate")
    if collate is not None:
        facts.append("the DataLoader's default collate stacks every sample of a batch")
    if sample_dim == 0:
        causes = [
            Cause(
                f"samples with different numbers of items ({cat.expected} and {cat.got}: boxes, objects, tokens) "
                "stacked into one batch by the default collate",
                0.8,
                fix="DataLoader(..., collate_fn=lambda batch: tuple(zip(*batch)))  # keep per-sample lists (detection)",
            )
        ]
    else:
        causes = [
            Cause(
                f"images of different sizes ({cat.expected} vs {cat.got} in dimension {sample_dim}) stacked into one batch",
                0.75,
                fix="transforms.Resize((H, W)) in the dataset; for detection DataLoader(..., collate_fn=lambda batch: "
                "tuple(zip(*batch)))",
            )
        ]
    return diagnose(
        CODE,
        parsed,
        f"`torch.stack` got samples that differ in their dimension {sample_dim} ({cat.expected} vs {cat.got})",
        facts,
        causes,
    )


def _unet_skip(expected: int, got: int) -> str | None:
    """'29 is odd: ...' when one size is the other halved and doubled again: floored (pooling) or rounded up
    (a stride-2 conv with padding, ``ceil_mode`` pooling)."""
    for odd, even in ((expected, got), (got, expected)):
        if odd % 2 == 1 and odd > 1 and even == odd - 1:
            return f"{odd} is odd: a 2x downsampling gives {odd} // 2 = {odd // 2}, and upsampling that gives {even}, not {odd}"
        if odd % 2 == 1 and odd > 1 and even == odd + 1:
            return (
                f"{odd} is odd: a 2x downsampling that rounds up (stride-2 conv with padding, ceil_mode pooling) gives "
                f"{odd // 2 + 1}, and upsampling that gives {even}, not {odd}"
            )
    return None


@rule(CODE, priority=60, needs="stack expects each tensor to be equal size")
def stack_mismatch(parsed: ParsedError) -> Diagnosis | None:
    m = _STACK.search(parsed.message)
    if not m:
        return None
    first, i, second, j = parse_ints(m[1]), int(m[2]), parse_ints(m[3]), int(m[4])
    facts = [f"entry {i} has shape {shape_str(first)} and entry {j} has shape {shape_str(second)}"]
    if len(first) == len(second):
        differing = [d for d, (x, y) in enumerate(zip(first, second, strict=True)) if x != y]
        facts.append(f"they differ at dimension(s) {', '.join(map(str, differing))}")
    return diagnose(
        CODE,
        parsed,
        f"`torch.stack` got tensors of shapes {shape_str(first)} and {shape_str(second)}",
        facts,
        _stack_causes(first, second),
    )


def _stack_causes(first: list[int], second: list[int]) -> list[Cause]:
    causes = [
        Cause(
            "the DataLoader's default collate stacks every sample into one batch tensor, so all samples must have the same shape",
            0.4,
            fix="pad the samples to one shape in the dataset, or pass a collate_fn that keeps them as a list",
        )
    ]
    if len(first) == len(second) == 3 and first[0] == second[0] and first[0] in (1, 3, 4):
        h, w = first[1], first[2]
        causes.append(
            Cause(
                f"images of different sizes ({first[1]}x{first[2]} and {second[1]}x{second[2]}) collated into one batch",
                0.7,
                fix=f"resize in the dataset transform: transforms.Resize(({h}, {w})); for detection keep a list: "
                "DataLoader(..., collate_fn=lambda batch: tuple(zip(*batch)))",
            )
        )
    elif len(first) == len(second) == 2 and first[1] == second[1] == 4:
        causes.append(
            Cause(
                f"detection targets with different box counts ({first[0]} and {second[0]}) collated into one tensor",
                0.75,
                fix="DataLoader(..., collate_fn=lambda batch: tuple(zip(*batch)))",
            )
        )
    elif len(first) != len(second):
        causes.append(
            Cause(
                f"samples of different rank ({len(first)}D and {len(second)}D): e.g. a grayscale image without a channel axis next to an RGB one",
                0.6,
                fix="Image.open(path).convert('RGB')  # or add the channel axis: x.unsqueeze(0)",
            )
        )
    elif len(first) == len(second) == 1:
        causes.append(
            Cause(
                f"variable-length sequences ({first[0]} and {second[0]} items) collated into one tensor",
                0.6,
                fix="collate_fn=lambda batch: torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)",
            )
        )
    return causes


@rule(CODE, priority=60, needs="The expanded size of the tensor")
def expand_mismatch(parsed: ParsedError) -> Diagnosis | None:
    m = _EXPAND.search(parsed.message)
    if not m:
        return None
    wanted, existing, dim = int(m[1]), int(m[2]), int(m[3])
    target, sizes = parse_ints(m[4]), parse_ints(m[5])
    facts = [
        f"dimension {dim} of the target has size {wanted}, but the tensor already has {existing} there (only a size of 1 can be expanded)",
        f"expand aligns the tensor's {len(sizes)} dims with the last {len(sizes)} of the target {shape_str(target)}",
    ]
    causes = [
        Cause(
            "the tensor's axes are not where the target expects them",
            0.4,
            fix="x.repeat(...) copies a non-1 axis; expand only stretches size-1 axes",
        )
    ]
    aligned = _aligned_view(sizes, target)
    if aligned is not None:
        causes.insert(
            0,
            Cause(
                f"the tensor's sizes fit the target once size-1 axes are put in the right places: {shape_str(aligned)}",
                0.7,
                fix=f"x.view({', '.join(map(str, aligned))}).expand({', '.join(map(str, target))})",
            ),
        )
    return diagnose(
        CODE,
        parsed,
        f"cannot expand size {existing} to {wanted} at dimension {dim}",
        facts,
        causes,
    )


def _aligned_view(sizes: list[int], target: list[int]) -> list[int] | None:
    """A view of ``sizes`` with 1s inserted so that its non-1 axes sit where ``target`` has them."""
    keep = [s for s in sizes if s != 1]
    view, k = [], 0
    for t in target:
        if k < len(keep) and keep[k] == t:
            view.append(t)
            k += 1
        else:
            view.append(1)
    if k != len(keep) or view == sizes or len(view) < len(sizes):
        return None
    return view


# after detection's HF119 (priority 60), which takes the RetinaNet/FCOS per-level splits
@rule(CODE, priority=70, needs="split_with_sizes expects split_sizes to sum exactly to")
def split_sizes_mismatch(parsed: ParsedError) -> Diagnosis | None:
    m = _SPLIT.search(parsed.message)
    if not m:
        return None
    actual, dim, sizes = int(m[1]), int(m[2]), parse_ints(m[3])
    total = sum(sizes)
    terms = " + ".join(map(fmt, sizes)) if len(sizes) <= 8 else f"{len(sizes)} sizes summing"
    facts = [f"split_sizes sum to {terms} = {fmt(total)}, but dimension {dim} has {fmt(actual)}"]
    if total > actual:
        facts.append(f"the sizes ask for {fmt(total - actual)} more than dimension {dim} has")
    elif total < actual:
        facts.append(f"the sizes leave {fmt(actual - total)} of the {fmt(actual)} out")
    return diagnose(
        CODE,
        parsed,
        f"split sizes sum to {fmt(total)} but the tensor has {fmt(actual)} at dimension {dim}",
        facts,
        _split_causes(actual, dim, sizes),
    )


def _split_causes(actual: int, dim: int, sizes: list[int]) -> list[Cause]:
    causes = [
        Cause(
            "the split sizes were computed from another tensor than the one split (lengths, counts per image or level)",
            0.5,
            fix=f"assert sum(sizes) == x.shape[{dim}], (sizes, x.shape)  # just before the split",
        )
    ]
    parts = len(sizes)
    if parts > 1 and len(set(sizes)) == 1:
        even = actual % parts == 0
        causes.insert(
            0,
            Cause(
                f"{parts} equal parts of {sizes[0]} assume dimension {dim} is {parts} x {sizes[0]} = {fmt(parts * sizes[0])}; "
                + (
                    f"it has {fmt(actual)} = {parts} x {actual // parts}"
                    if even
                    else f"{fmt(actual)} is not a multiple of {parts}"
                ),
                0.65,
                fix=f"x.chunk({parts}, dim={dim})"
                if even
                else f"torch.tensor_split(x, {parts}, dim={dim})  # or make dimension {dim} a multiple of {parts}",
            ),
        )
    return causes
