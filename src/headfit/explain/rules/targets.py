"""Class targets as users build them: HF126 a cross-entropy target of the wrong shape for the logits
(a mask with a channel axis, an RGB or one-hot mask, logits with the class axis last, masks at another
resolution) and HF127 ``F.one_hot`` on what is not a tensor of class indices.

Cross-entropy takes logits ``[N, C, d1, ...]`` and a target ``[N, d1, ...]`` of class indices: one rank
less, no class axis. The target's shape in the message says which encoding it is in.
"""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.frames import shows
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, is_power_of_two

SPATIAL = "HF126"
ONE_HOT = "HF127"

_SPATIAL_RANK = re.compile(
    r"only batches of spatial targets supported \(3D tensors\) but got targets of "
    r"(?:dimension: (?P<rank>\d+)|size: :? ?\[(?P<dims>[\d, ]*)\]?)"
)
_SPATIAL_SIZE = re.compile(
    r"size mismatch \(got input: \[(?P<input>[\d, ]*)\] ?, target: \[(?P<target>[\d, ]*)\]?"
)
_TARGET_SIZE = re.compile(r"Expected target size \[(?P<want>[\d, ]*)\], got \[(?P<got>[\d, ]*)\]?")
_ONE_HOT_TYPE = re.compile(r"one_hot is only applicable to index tensor")
_ONE_HOT_RANGE = re.compile(r"Class values must be (?P<what>smaller than num_classes|non-negative)")

INDEX_MASK = (
    "mask = torch.as_tensor(np.array(Image.open(path)), dtype=torch.long)  # class indices [H, W]; "
    "not ToTensor(), which adds a channel axis and divides by 255"
)


# --- HF126 ---------------------------------------------------------------------------------------------


@rule(SPATIAL, priority=55, needs="only batches of spatial targets supported")
def spatial_target_rank(parsed: ParsedError) -> Diagnosis | None:
    m = _SPATIAL_RANK.search(parsed.message)
    if not m:
        return None
    dims = parse_ints(m["dims"]) if m["dims"] is not None else None
    rank = len(dims) if dims is not None else int(m["rank"])
    got = shape_str(dims) if dims else f"{rank}D"
    facts = [
        "4D logits [N, C, H, W] take a 3D target [N, H, W] of class indices (no class axis); "
        f"this target is {got}"
    ]
    causes = _mask_causes(dims, rank, facts)
    return diagnose(
        SPATIAL,
        parsed,
        f"cross-entropy on [N, C, H, W] logits got a {got} target, not [N, H, W]",
        facts,
        causes,
    )


def _mask_causes(dims: list[int] | None, rank: int, facts: list[str]) -> list[Cause]:
    squeeze = Cause(
        "the masks carry a channel axis of 1 ([N, 1, H, W]): read as a 1-channel image",
        0.6,
        fix="loss = F.cross_entropy(logits, target.squeeze(1).long())  # or build the mask as " + INDEX_MASK,
    )
    rgb = Cause(
        "the masks are colour images (RGB/RGBA, 3 or 4 values per pixel), not one class index per pixel",
        0.55,
        fix="map each colour to its class index once, in the dataset: mask = palette_to_index(np.array(Image.open(path)))"
        "  # or save the masks as single-channel index PNGs",
    )
    one_hot = Cause(
        "the masks are one-hot [N, K, H, W]: cross-entropy takes the index of the class per pixel",
        0.45,
        fix="loss = F.cross_entropy(logits, target.argmax(1))  # one-hot [N, K, H, W] -> indices [N, H, W]; "
        "K must equal the logits' C",
    )
    if rank < 3:
        return _too_few_dims(dims, rank, facts)
    if rank > 4:
        return [Cause("the target has extra axes", 0.5, fix="print(target.shape)  # it must be [N, H, W]")]
    if dims is None:
        facts.append("a 4D target is a mask with a channel axis: [N, 1, H, W], a colour mask, or one-hot")
        return [squeeze, rgb, one_hot]
    if dims[1] == 1:
        return [squeeze]
    channels_last = dims[-1] in (3, 4) and dims[1] not in (3, 4)
    channels_first = dims[1] in (3, 4)
    if channels_last or channels_first:
        where = "the last axis" if channels_last else "axis 1"
        facts.append(
            f"{dims[-1] if channels_last else dims[1]} values per pixel in {where}: a colour (RGB/RGBA) mask"
        )
        rgb.confidence = 0.8
        return [rgb, one_hot]
    facts.append(
        f"axis 1 has {dims[1]} values per pixel: one-hot over {dims[1]} classes (if it matches the logits' C)"
    )
    one_hot.confidence = 0.75
    return [one_hot, squeeze]


def _too_few_dims(dims: list[int] | None, rank: int, facts: list[str]) -> list[Cause]:
    if rank == 1:
        facts.append("a 1D target is one label per image: a classification target against a spatial output")
        return [
            Cause(
                "the model returns a map [N, C, H, W] where the labels are one per image: its classifier lacks "
                "the global pooling (or a segmentation model is trained on image labels)",
                0.7,
                fix="logits = logits.mean((2, 3))  # or nn.AdaptiveAvgPool2d(1) + flatten before the classifier",
            )
        ]
    facts.append("a 2D target [N, L] is a flattened mask (or one label list per image)")
    return [
        Cause(
            "the masks were flattened to [N, H*W] while the logits are [N, C, H, W]",
            0.6,
            fix="loss = F.cross_entropy(logits.flatten(2), target)  # [N, C, H*W] against [N, H*W]",
        )
    ]


@rule(SPATIAL, priority=55, needs="size mismatch (got input: [")
def spatial_target_size(parsed: ParsedError) -> Diagnosis | None:
    m = _SPATIAL_SIZE.search(parsed.message)
    if not m:
        return None
    logits, target = parse_ints(m["input"]), parse_ints(m["target"])
    if len(logits) != 4 or len(target) != 3:
        return None
    lh, lw, th, tw = logits[2], logits[3], target[1], target[2]
    facts = [f"the logits are {lh}x{lw}, the masks {th}x{tw}: cross-entropy compares them pixel by pixel"]
    causes = []
    if th % lh == 0 and tw % lw == 0 and th // lh == tw // lw and is_power_of_two(th // lh):
        stride = th // lh
        facts.append(
            f"{th} = {stride} x {lh} and {tw} = {stride} x {lw}: the logits are at 1/{stride} resolution"
        )
        causes.append(
            Cause(
                f"the model's output stride: it predicts at 1/{stride} of the input size and was not upsampled",
                0.75,
                fix="logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear', align_corners=False)",
            )
        )
    causes.append(
        Cause(
            "the masks were resized or cropped differently from the images",
            0.45 if causes else 0.6,
            fix="apply the same geometric transform to image and mask (torchvision.transforms.v2 with tv_tensors.Mask)",
        )
    )
    if logits[0] != target[0]:
        facts.append(f"and the batch differs: {logits[0]} logits, {target[0]} masks")
    return diagnose(SPATIAL, parsed, f"the logits are {lh}x{lw} but the masks are {th}x{tw}", facts, causes)


@rule(SPATIAL, priority=55, needs="Expected target size [")
def target_size(parsed: ParsedError) -> Diagnosis | None:
    m = _TARGET_SIZE.search(parsed.message)
    if not m:
        return None
    want, got = parse_ints(m["want"]), parse_ints(m["got"])
    if len(want) < 2 or not got:
        return None
    facts = [
        f"logits [N, C, d1, ...] take a target [N, d1, ...]: torch read the logits as N = {want[0]}, "
        f"d1 = {shape_str(want[1:])[1:-1]} and expects {shape_str(want)}; the target is {shape_str(got)}"
    ]
    causes = []
    if len(got) == len(want) and got[0] == want[0] and got[1:] != want[1:]:
        length, classes = got[1], want[1]
        facts.append(
            f"if the logits are [N, L, C] = [{want[0]}, {length}, {classes}] (class axis last), torch takes the "
            f"{length} positions for classes and the {classes} classes for positions"
        )
        causes.append(
            Cause(
                f"the class axis is last: cross-entropy wants it in dim 1 ([N, {classes}, {length}], not [N, {length}, {classes}])",
                0.8,
                fix="loss = F.cross_entropy(logits.permute(0, 2, 1), target)  # or logits.reshape(-1, C) with target.reshape(-1)",
            )
        )
    elif len(got) < len(want):
        facts.append(
            f"the target has one label per sample; the logits have an extra axis of {shape_str(want[1:])[1:-1]}"
        )
        causes.append(
            Cause(
                "the model returns one prediction per position (a sequence or a map) while the labels are one "
                "per sample: reduce the positions first",
                0.7,
                fix="logits = logits[:, :, -1]  # the last step of a sequence; or logits.mean(2) to pool",
            )
        )
    causes.append(
        Cause(
            "the target was built for another layout of the logits",
            0.3,
            fix="print(logits.shape, target.shape)",
        )
    )
    return diagnose(
        SPATIAL,
        parsed,
        f"cross-entropy expects a target of {shape_str(want)}, got {shape_str(got)}",
        facts,
        causes,
    )


# --- HF127 ---------------------------------------------------------------------------------------------


@rule(ONE_HOT, priority=55, needs="one_hot is only applicable to index tensor")
def one_hot_dtype(parsed: ParsedError) -> Diagnosis | None:
    if not _ONE_HOT_TYPE.search(parsed.message):
        return None
    facts = ["`F.one_hot` takes int64 class indices; this tensor is floating point (or another integer type)"]
    causes = [
        Cause(
            "the labels are float (a float array, a mask read with ToTensor, a division)",
            0.7,
            fix="F.one_hot(labels.long(), num_classes)",
        ),
        Cause(
            "the mask was read with ToTensor(), which scales to 0..1: `.long()` would make every pixel 0",
            0.45 if shows(parsed, "dataset") else 0.3,
            fix=INDEX_MASK,
        ),
    ]
    return diagnose(
        ONE_HOT, parsed, "`F.one_hot` got a tensor that is not int64 class indices", facts, causes
    )


@rule(
    ONE_HOT,
    priority=55,
    needs=("Class values must be smaller than num_classes", "Class values must be non-negative"),
)
def one_hot_range(parsed: ParsedError) -> Diagnosis | None:
    m = _ONE_HOT_RANGE.search(parsed.message)
    if not m:
        return None
    if m["what"] == "non-negative":
        facts = [
            "`F.one_hot` needs every value in 0..num_classes-1; a negative value is an ignore marker (-1, -100)"
        ]
        causes = [
            Cause(
                "ignore markers (-1 / -100) reach one_hot: encode the valid labels only",
                0.7,
                fix="valid = target >= 0; onehot = F.one_hot(target.clamp(min=0), C) * valid.unsqueeze(-1)",
            )
        ]
        return diagnose(ONE_HOT, parsed, "`F.one_hot` got a negative class value", facts, causes)
    facts = ["`F.one_hot(t, num_classes)` needs every value < num_classes"]
    causes = [
        Cause(
            "num_classes is smaller than the labels (1-based labels, or classes added to the dataset)",
            0.5,
            fix="F.one_hot(t, num_classes=int(t.max()) + 1)  # or t - 1 for 1-based labels",
        ),
        Cause(
            "the masks mark ignored pixels with 255 (VOC, Cityscapes): one_hot cannot encode them",
            0.45,
            fix="valid = t != 255; onehot = F.one_hot(t * valid, C) * valid.unsqueeze(-1)",
        ),
        Cause(
            "binary masks saved as 0/255 images: the object pixels are 255, not class 1",
            0.4,
            fix="t = (t > 127).long()  # 0/255 -> 0/1",
        ),
    ]
    return diagnose(ONE_HOT, parsed, "`F.one_hot` got a class value >= num_classes", facts, causes)
