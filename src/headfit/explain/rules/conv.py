"""HF104 (a convolution receives another channel count than its weight takes) and HF105 (a layer
receives a tensor of the wrong rank: a missing batch dimension, an extra one).

The channel story is read from the shapes: 1 channel where 3 are expected is a grayscale image, 4 is
RGBA, a last dimension equal to the expected count is a channels-last (HWC) image, anything else is a
feature map that reached the wrong layer.
"""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints, shape_str
from headfit.explain.build import make_diagnosis
from headfit.explain.engine import rule
from headfit.explain.frames import shows, user_sources
from headfit.explain.parse import ParsedError

_CONV = re.compile(
    r"Given (?:groups=(?P<groups>\d+)|transposed=1), weight of size \[(?P<weight>[\d, ]+)\], "
    r"expected input\[(?P<input>[\d, ]+)\] to have (?P<expected>\d+) channels, but got (?P<got>\d+)"
)
_CONV_RANK = re.compile(
    r"Expected (?P<unbatched>\d)D \(unbatched\) or (?P<batched>\d)D \(batched\) input to (?P<op>\w+), "
    r"but got input of size: \[(?P<dims>[\d, ]*)\]?"
)
_NORM_RANK = re.compile(r"expected (?P<wanted>\d)D(?: or (?P<wanted2>\d)D)? input \(got (?P<got>\d)D input\)")
# torch < 1.11: "... weight [64, 3, 7, 7], but got 3-dimensional input of size [3, 224, 224] instead" (1.0 printed
# the weight as "64 3 7 7", and some versions omit the input's rank)
_OLD_CONV_RANK = re.compile(
    r"Expected (?P<batched>\d)-dimensional input for \d-dimensional weight \[?(?P<weight>[\d, ]+?)\]?, "
    r"but got (?:\d-dimensional )?input of size \[(?P<dims>[\d, ]*)\]"
)
_POOL_RANK = re.compile(
    r"non-empty (?P<unbatched>\d)D or (?P<batched>\d)D \(batch mode\) tensor expected for input"
)

# --- HF104 ---------------------------------------------------------------------------------------------


@rule("HF104", priority=40, needs="channels, but got")
def conv_channel_mismatch(parsed: ParsedError) -> Diagnosis | None:
    match = _CONV.search(parsed.message)
    if match is None:
        return None
    weight, dims = parse_ints(match["weight"]), parse_ints(match["input"])
    expected, got = int(match["expected"]), int(match["got"])
    groups = int(match["groups"] or 1)
    facts = [
        f"the conv's weight {shape_str(weight)} is [out_channels, in_channels/groups, *kernel]: "
        f"it takes {expected} input channels" + (f" ({weight[1]}*{groups} groups)" if groups > 1 else ""),
        f"the input {shape_str(dims)} has {got} channels in dim 1",
    ]
    axes = [i for i, d in enumerate(dims) if d == expected and i != 1]
    if axes:
        facts.append(f"the {expected} the conv wants is in dim {axes[-1]} of the input, not in dim 1")
    causes = _channel_causes(dims, expected, got, weight, parsed)
    summary = f"a convolution built for {expected} input channels receives {got}"
    return make_diagnosis(parsed, "HF104", summary, facts, causes)


def _channel_causes(
    dims: list[int], expected: int, got: int, weight: list[int], parsed: ParsedError | None = None
) -> list[Cause]:
    """What produced the input first (its layout, the image type, the layer before), rebuilding the conv last."""
    causes = []
    if len(dims) >= 3 and dims[-1] in (expected, 4 if expected == 3 else expected) and dims[1] != dims[-1]:
        if len(dims) == 3:  # one [H, W, C] image: torch reads [C, H, W] unbatched, with H as the channels
            fix = "x = x.permute(2, 0, 1).unsqueeze(0)  # [H, W, C] -> [1, C, H, W]; transforms.ToTensor() does it"
        else:
            order = "(0, 3, 1, 2)" if len(dims) == 4 else "(0, 4, 1, 2, 3)"
            fix = (
                f"x = x.permute{order}  # HWC -> CHW; torchvision.transforms.ToTensor() does this for images"
            )
        causes.append(
            Cause(
                f"the image is channels-last ({shape_str(dims)}: channels in the last dim, the conv reads dim 1)",
                0.9,
                fix=fix,
            )
        )
        if dims[-1] == 4 and expected == 3:
            causes.append(
                Cause("the channels-last image is RGBA", 0.6, fix='img.convert("RGB")  # drop alpha')
            )
    elif got == 1 and expected == 3:
        causes.extend(_grayscale_causes())
    elif got == 4 and expected == 3:
        causes.append(
            Cause(
                "the image is RGBA (4 channels) and the model takes RGB",
                0.85,
                fix='img.convert("RGB")  # or x[:, :3]',
            )
        )
    elif got == 3 and expected == 1:
        causes.append(
            Cause(
                "an RGB image reaches a model built for 1 channel",
                0.8,
                fix='img.convert("L")  # or x.mean(1, keepdim=True)',
            )
        )
    if not causes:
        causes.extend(_producer_causes(expected, got, parsed))
    causes.append(
        Cause(
            f"rebuild the conv for {got} input channels (a pretrained conv rebuilt this way loses its weights)",
            0.3,
            attribute="in_channels",
            fix=f"nn.Conv2d({got}, {weight[0]}, kernel_size={weight[2] if len(weight) > 2 else 1})  # in_channels = {got}",
        )
    )
    return causes


def _producer_causes(expected: int, got: int, parsed: ParsedError | None) -> list[Cause]:
    """A feature map of another width: a concatenation, another backbone, a skipped or reordered layer."""
    cat = parsed is not None and any("torch.cat(" in s for s in user_sources(parsed))
    if cat or got == 2 * expected:
        return [
            Cause(
                f"the input is a concatenation ({got} = the channels of the joined maps): the conv after a "
                f"torch.cat needs in_channels = their sum, it was built for {expected}",
                0.65 if cat else 0.45,
                attribute="in_channels",
                fix="in_channels = the sum of the concatenated maps' channels (e.g. skip + upsampled in a U-Net decoder)",
            ),
            _wrong_producer(expected, got, 0.4),
        ]
    return [_wrong_producer(expected, got, 0.6)]


def _wrong_producer(expected: int, got: int, confidence: float) -> Cause:
    return Cause(
        f"the layer before emits {got} channels, not the {expected} this conv was built for: another backbone or "
        "feature extractor than the head was made for, or a layer skipped or reordered",
        confidence,
        fix=f"use the backbone the head was built for, or build the head from the backbone's out_channels ({got})",
    )


def _grayscale_causes() -> list[Cause]:
    return [
        Cause(
            "the images are grayscale (1 channel) and the model takes RGB",
            0.85,
            fix='x = x.expand(-1, 3, -1, -1)  # or x.repeat(1, 3, 1, 1); for PIL: img.convert("RGB")',
        ),
        Cause(
            "the model should take 1 channel: adapt its stem",
            0.5,
            attribute="in_channels",
            fix="conv.weight = nn.Parameter(conv.weight.sum(dim=1, keepdim=True)); conv.in_channels = 1"
            "  # timm: create_model(name, in_chans=1)",
        ),
    ]


# --- HF105 ---------------------------------------------------------------------------------------------


@rule(
    "HF105",
    priority=40,
    needs=(
        "(unbatched) or",
        "D input (got ",
        "(batch mode) tensor expected for input",
        "-dimensional input for ",
    ),
)
def input_rank_mismatch(parsed: ParsedError) -> Diagnosis | None:
    match = _CONV_RANK.search(parsed.message)
    if match is not None:
        dims = parse_ints(match["dims"])
        return _rank_diagnosis(parsed, match["op"], int(match["unbatched"]), int(match["batched"]), dims)
    match = _OLD_CONV_RANK.search(parsed.message)
    if match is not None:
        batched, weight = int(match["batched"]), parse_ints(match["weight"])
        op = f"conv{batched - 2}d"
        return _rank_diagnosis(
            parsed, op, batched - 1, batched, parse_ints(match["dims"]), in_channels=weight[1]
        )
    match = _NORM_RANK.search(parsed.message)
    if match is not None:
        wanted = int(match["wanted2"] or match["wanted"])
        got = int(match["got"])
        return _rank_diagnosis(parsed, "batch_norm", wanted - 1, wanted, None, got_rank=got)
    match = _POOL_RANK.search(parsed.message)
    if match is not None:
        return _rank_diagnosis(parsed, "pooling", int(match["unbatched"]), int(match["batched"]), None)
    return None


def _rank_diagnosis(
    parsed: ParsedError,
    op: str,
    unbatched: int,
    batched: int,
    dims: list[int] | None,
    got_rank: int | None = None,
    in_channels: int | None = None,
) -> Diagnosis:
    rank = len(dims) if dims is not None else got_rank
    facts = [f"`{op}` takes {unbatched}D (unbatched) or {batched}D (batched) input"]
    if rank is not None:
        facts.append(
            f"the input has {rank} dimension{'s' if rank != 1 else ''}"
            + (f": {shape_str(dims)}" if dims else "")
        )
    causes = _rank_causes(rank, unbatched, batched, dims)
    if op == "batch_norm" and rank is not None and rank < unbatched and batched == 3:
        # BatchNorm1d takes [N, C] or [N, C, L]: a 1D input lacks the batch dimension only
        causes = [
            Cause(
                "the batch dimension is missing: BatchNorm1d needs at least [N, C] (a `squeeze()` without a dim "
                "drops the batch of one)",
                0.8,
                fix="x = x.unsqueeze(0)  # [C] -> [1, C]; or squeeze only the axis you mean: x.squeeze(-1)",
            ),
            *causes[1:],
        ]
    squeezed = shows(parsed, "squeeze")
    if squeezed is not None and rank is not None and rank < batched:
        facts.append(f"traceback shows a `squeeze()` without a dim: `{squeezed.source}`")
        causes.insert(
            0,
            Cause(
                "a `squeeze()` without a dim removed the batch of one (and any other size-1 axis)",
                0.85,
                fix="x = x.squeeze(-1)  # name the axis to drop; keep dim 0, the batch",
            ),
        )
    if in_channels is not None and dims and rank == unbatched and dims[0] != in_channels:
        facts.append(f"the weight takes {in_channels} input channels; dim 0 of the input is {dims[0]}")
        causes = _missing_channel_causes(dims, in_channels)
    if op == "batch_norm" and rank is not None and rank == unbatched:
        facts.append(
            "convs take an unbatched [C, H, W] sample since torch 1.11 but BatchNorm does not: a single image without "
            "its batch dimension gets this far"
        )
    if op == "batch_norm" and rank is not None and rank > batched and 3 <= rank <= 5:
        causes.insert(
            0,
            Cause(
                f"a BatchNorm{batched - 2}d normalises {rank}D feature maps",
                0.8,
                fix=f"nn.BatchNorm{rank - 2}d(num_features)  # in place of nn.BatchNorm{batched - 2}d",
            ),
        )
    got = f"{rank}D" if rank is not None else "a tensor of another rank"
    summary = f"`{op}` expects a {batched}D batch but receives {got}"
    return make_diagnosis(parsed, "HF105", summary, facts, causes)


def _missing_channel_causes(dims: list[int], in_channels: int) -> list[Cause]:
    """An unbatched-rank input whose dim 0 is not the conv's channel count: dim 0 is the batch, dim 1 is off."""
    causes = []
    if len(dims) > 1 and dims[1] != in_channels and dims[1] % in_channels == 0:
        merged = dims[1] // in_channels
        causes.append(
            Cause(
                f"dim 1 holds {dims[1]} = {in_channels}*{merged}: channels merged with another axis "
                f"(e.g. {merged} frames of a clip)",
                0.6,
                fix=f"x = x.view({dims[0]}, {merged}, {in_channels}, *x.shape[2:]).transpose(1, 2)"
                f"  # -> [{dims[0]}, {in_channels}, {merged}, ...]",
            )
        )
    if in_channels == 1 and dims[1] != 1:
        causes.append(
            Cause(
                "the channel dimension is missing (single-channel images batched as [N, H, W])",
                0.8,
                fix=f"x = x.unsqueeze(1)  # {shape_str(dims)} -> {shape_str(dims[:1] + [1] + dims[1:])}",
            )
        )
    causes.append(
        Cause(
            f"the batch dimension is missing and dim 0 ({dims[0]}) is not the {in_channels} channels the conv takes",
            0.3,
            fix="print(x.shape)  # the conv wants [N, C, ...] with C = " + str(in_channels),
        )
    )
    return causes


def _rank_causes(rank: int | None, unbatched: int, batched: int, dims: list[int] | None) -> list[Cause]:
    if rank is None:
        return [
            Cause(
                "the input has the wrong number of dimensions",
                0.6,
                fix="print(x.shape)  # then unsqueeze(0) or squeeze",
            )
        ]
    if rank < unbatched:
        missing = batched - rank
        index = ", ".join(["None"] * missing)
        return [
            Cause(
                f"{missing} leading dimension{'s are' if missing > 1 else ' is'} missing: "
                f"the batch dim{' and the channel dim' if missing > 1 else ''} (a `squeeze()` without a dim drops "
                "the batch of one with the other size-1 axes)",
                0.8,
                fix=f"x = x[{index}]  # {shape_str(dims or [])} -> {shape_str([1] * missing + (dims or []))}; "
                "or squeeze only the axis you mean: x.squeeze(-1)",
            )
        ]
    if rank == unbatched:
        return [
            Cause(
                "the batch dimension is missing (a single sample)",
                0.8,
                fix="x = x.unsqueeze(0)  # add the batch dim",
            )
        ]
    extra = rank - batched
    ones = [i for i, d in enumerate(dims or []) if d == 1]
    if ones and extra == 1:
        return [
            Cause(f"dimension {ones[0]} has size 1 and is one too many", 0.8, fix=f"x = x.squeeze({ones[0]})")
        ]
    return [
        Cause(
            f"{extra} dimension{'s' if extra > 1 else ''} too many: a batch of batches (e.g. stacked lists of samples)",
            0.6,
            fix=f"x = x.flatten(0, {extra})  # merge the leading dims into one batch",
        )
    ]
