"""HF101 (a view/reshape asks for a shape the tensor's size cannot fill), HF102 (view on a
non-contiguous tensor) and HF129's window partition view of a Swin-style backbone.

The detection-head signatures are recognised by the shape of the view, and every number is computed
from the message: ``[N, -1, K, H, W]`` is the per-level reshape of torchvision's FCOS/RetinaNet/SSD
classification head, ``[N, -1, 4, H, W]`` the box regression head, ``[bs, na, no, ny, nx]`` a YOLO
detect layer (no = nc + 5).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from headfit.diagnosis import Cause, Diagnosis, Location
from headfit.explain.arith import fmt, parse_ints, prod, product_expr, shape_str
from headfit.explain.build import make_diagnosis
from headfit.explain.engine import rule
from headfit.explain.locate import locate
from headfit.explain.parse import ParsedError
from headfit.families._facts import COCO_CLASSES, DENSE, FPN_CHANNELS, SSD, SSD300_ANCHORS

_VIEW = re.compile(r"shape '\[(?P<dims>[-\d,\s]*)\]' is invalid for input of size (?P<size>\d+)")
_UNFLATTEN = re.compile(
    r"unflatten: Provided sizes \[(?P<dims>[-\d,\s]*)\] don't multiply up to the size of dim "
    r"(?P<dim>-?\d+) \((?P<size>\d+)\)"
)
_TWO_INFERRED = re.compile(r"only one dimension can be inferred")
_EMPTY = re.compile(r"cannot reshape tensor of 0 elements into shape \[(?P<dims>[-\d,\s]*)\]")
_NON_CONTIGUOUS = re.compile(r"view size is not compatible with input tensor's size and stride")

TORCHVISION_HEAD_CHANNELS = FPN_CHANNELS  # in_channels of FCOS/RetinaNet head convs (the FPN width)
SSDLITE_ANCHORS = SSD.anchors["SSDlite"]
SWIN_WINDOWS = (7, 12, 8, 16, 6, 14, 10)  # window sizes of released Swin-style models, most common first


@dataclass(frozen=True)
class ViewRequest:
    """A failed view: the shape asked for and the number of elements the tensor has."""

    dims: list[int]
    size: int
    op: str  # "view" or "unflatten"

    @property
    def known(self) -> list[int]:
        return [d for d in self.dims if d != -1]

    @property
    def inferred(self) -> bool:
        return -1 in self.dims


def view_request(message: str) -> ViewRequest | None:
    match = _VIEW.search(message)
    if match:
        return ViewRequest(parse_ints(match["dims"]), int(match["size"]), "view")
    match = _UNFLATTEN.search(message)
    if match:
        return ViewRequest(parse_ints(match["dims"]), int(match["size"]), "unflatten")
    return None


# --- detection heads: [N, -1, K, H, W] ---------------------------------------------------------------


@dataclass(frozen=True)
class HeadKind:
    name: str  # "FCOS", "RetinaNet", "SSD"
    anchors: int  # A: boxes per location
    attribute: str  # the attribute that the view reads: num_classes, or num_columns for SSD


def _head_kinds(location: Location | None, height: int) -> list[HeadKind]:
    """Which torchvision heads the view can come from: the traceback says it, or all that fit."""
    kind = (location.module_type or "") if location else ""
    ssd_anchors = SSD300_ANCHORS.get(height, SSDLITE_ANCHORS)
    fcos = HeadKind("FCOS", DENSE.anchors["FCOS"], DENSE.num_attr)
    retinanet = HeadKind("RetinaNet", DENSE.anchors["RetinaNet"], DENSE.num_attr)
    if kind.startswith("FCOS"):
        return [fcos]
    if kind.startswith("RetinaNet"):
        return [retinanet]
    if kind.startswith("SSD"):
        return [HeadKind("SSD", ssd_anchors, SSD.num_attr)]
    return [fcos, retinanet]


@rule("HF101", priority=10, needs=("is invalid for input of", "don't multiply up to the size of dim"))
def detection_head_view(parsed: ParsedError) -> Diagnosis | None:
    req = view_request(parsed.message)
    if req is None or req.op != "view" or len(req.dims) != 5 or req.dims[1] != -1 or -1 in req.dims[2:]:
        return None
    n, _, k, h, w = req.dims
    if min(n, k, h, w) <= 0 or req.size % (n * h * w):
        return None
    channels = req.size // (n * h * w)
    location = locate(parsed)
    if k == 4:
        return _regression_view(parsed, req, channels, location)
    return _classification_view(parsed, req, channels, location)


def _view_facts(req: ViewRequest, channels: int) -> list[str]:
    n, _, _, h, w = req.dims
    known = req.known
    facts = [f"{product_expr(known)} elements per unit of -1"]
    facts.append(_divides_fact(prod(known), req.size))
    facts.append(f"{fmt(req.size)} / ({n}*{h}*{w}) = {fmt(channels)} channels per location")
    return facts


def _divides_fact(known: int, size: int) -> str:
    if known > size:
        return f"{fmt(known)} does not divide {fmt(size)}: it is larger than the whole tensor"
    quotient, remainder = divmod(size, known)
    if remainder == 0:
        return f"{fmt(size)} / {fmt(known)} = {fmt(quotient)}"
    return f"{fmt(known)} does not divide {fmt(size)}: {fmt(size)} = {fmt(quotient)}*{fmt(known)} + {fmt(remainder)}"


def _classification_view(
    parsed: ParsedError, req: ViewRequest, channels: int, location: Location | None
) -> Diagnosis:
    k, h = req.dims[2], req.dims[3]
    kinds = _head_kinds(location, h)
    facts = _view_facts(req, channels)
    names = "/".join(kind.name for kind in kinds)
    facts.append(
        f"a `[N, -1, K, H, W]` view is the per-level reshape of torchvision's {names} classification head: "
        f"its conv emits A*K channels per location, A anchors times K classes"
    )
    facts.extend(_anchor_fact(kind, channels) for kind in kinds)
    if k == COCO_CLASSES:
        facts.append(f"{k} is torchvision's COCO class count (90 categories + background)")
    fitting = [kind for kind in kinds if channels % kind.anchors == 0]
    causes = [_attribute_cause(kind, k, channels, confidence) for kind, confidence in _ranked(fitting)]
    fixed = _ranked(fitting)[0][0] if fitting else kinds[0]
    causes.append(_conv_cause(fixed, k, channels))
    summary = (
        f"the classification head's `{fixed.attribute}` says {k} but its conv emits {channels} channels "
        f"per location"
    )
    location = location or Location(DENSE.head, None)
    return make_diagnosis(parsed, "HF101", summary, facts, causes, location)


def _anchor_fact(kind: HeadKind, channels: int) -> str:
    if channels % kind.anchors:
        return f"{kind.name} (A = {kind.anchors}): {channels} is not a multiple of {kind.anchors}, it cannot give {channels}"
    classes = channels // kind.anchors
    if kind.anchors == 1:
        return f"{kind.name} (A = 1): {channels} channels = {classes} classes"
    return f"{kind.name} (A = {kind.anchors}): {channels} = {kind.anchors}*{classes} -> {classes} classes"


def _ranked(kinds: list[HeadKind]) -> list[tuple[HeadKind, float]]:
    """More anchors first: a channel count divisible by 9 is rarely a coincidence."""
    ordered = sorted(kinds, key=lambda kind: -kind.anchors)
    return [(kind, 0.9 if i == 0 else 0.6) for i, kind in enumerate(ordered)]


def _attribute_cause(kind: HeadKind, k: int, channels: int, confidence: float) -> Cause:
    classes = channels // kind.anchors
    return Cause(
        summary=(
            f"the conv was replaced for {classes} classes ({kind.name}: {channels} = {kind.anchors}*{classes}) "
            f"but the head's `{kind.attribute}` still says {k}"
        ),
        confidence=confidence,
        module=DENSE.head,
        attribute=kind.attribute,
        fix=f"model.{DENSE.head}.{kind.attribute} = {classes}",
    )


def _conv_cause(kind: HeadKind, k: int, channels: int) -> Cause:
    wanted = kind.anchors * k
    if kind.name == "SSD":
        return Cause(
            summary=(
                f"the per-level conv was sized wrong: it emits {channels} channels, {kind.name} needs "
                f"A*K = {kind.anchors}*{k} = {fmt(wanted)}"
            ),
            confidence=0.3,
            module=SSD.head,
            attribute=SSD.logits,
            fix=f"model.{SSD.head} = SSDClassificationHead(in_channels, num_anchors, K + 1)",
        )
    return Cause(
        summary=(
            f"the conv `cls_logits` was sized wrong: it emits {channels} channels, {k} classes need "
            f"A*K = {kind.anchors}*{k} = {fmt(wanted)}"
        ),
        confidence=0.3,
        module=DENSE.logits_path,
        fix=(
            f"model.{DENSE.logits_path} = nn.Conv2d({TORCHVISION_HEAD_CHANNELS}, "
            f"{kind.anchors} * {k}, 3, padding=1)"
        ),
    )


def _regression_view(
    parsed: ParsedError, req: ViewRequest, channels: int, location: Location | None
) -> Diagnosis:
    facts = _view_facts(req, channels)
    facts.append("a `[N, -1, 4, H, W]` view is the per-level reshape of a box regression head: A*4 channels")
    if channels % 4:
        facts.append(
            f"{channels} is not a multiple of 4: the regression conv does not emit 4 numbers per box"
        )
    cause = Cause(
        summary=f"the box regression conv emits {channels} channels, not A*4 (4 box coordinates per anchor)",
        confidence=0.8,
        module=f"{DENSE.regression}.bbox_reg",
        fix=f"model.{DENSE.regression}.bbox_reg = nn.Conv2d({TORCHVISION_HEAD_CHANNELS}, num_anchors * 4, 3, padding=1)",
    )
    location = location or Location(DENSE.regression, None)
    summary = f"the box regression head's conv emits {channels} channels per location, not a multiple of 4 per anchor"
    return make_diagnosis(parsed, "HF101", summary, facts, [cause], location)


# --- YOLO detect layers: [bs, na, no, ny, nx] with no = nc + 5 ------------------------------------------


@rule("HF101", priority=20, needs=("is invalid for input of", "don't multiply up to the size of dim"))
def yolo_detect_view(parsed: ParsedError) -> Diagnosis | None:
    req = view_request(parsed.message)
    if req is None or req.inferred or len(req.dims) != 5:
        return None
    bs, na, no, ny, nx = req.dims
    if not (1 <= na <= 16 and no > 5 and min(bs, ny, nx) > 0) or req.size % (bs * ny * nx):
        return None
    channels = req.size // (bs * ny * nx)
    if channels % na or channels // na <= 5 or channels // na == no:
        return None
    actual_no = channels // na
    nc, actual_nc = no - 5, actual_no - 5
    facts = [
        f"the view needs {product_expr(req.dims)} elements, the tensor has {fmt(req.size)}",
        f"`[bs, na, no, ny, nx]` is a YOLO detect layer's view: no = nc + 5 = {nc} + 5 = {no}",
        f"{fmt(req.size)} / ({bs}*{ny}*{nx}) = {channels} channels = na*no = {na}*{actual_no}",
        f"the conv emits no = {actual_no} per anchor, that is nc = {actual_no} - 5 = {actual_nc} classes",
    ]
    causes = [
        Cause(
            summary=f"the detect layer's `nc` says {nc} but its conv was built for {actual_nc} classes",
            confidence=0.85,
            attribute="nc",
            fix=f"to train {nc} classes, the conv before each detect/[yolo] layer needs na*(nc+5) = {na * no} outputs "
            f"(darknet cfg: filters={na * no}); to keep {actual_nc}, build with nc={actual_nc} (`Model(cfg, nc={actual_nc})`)",
        ),
        Cause(
            summary=f"the detect conv was sized for {actual_nc} classes instead of {nc}: it needs na*(nc+5) = {na * no} outputs",
            confidence=0.4,
            attribute="m",
            fix=f"nn.Conv2d(in_channels, {na} * ({nc} + 5), 1)",
        ),
    ]
    summary = f"the YOLO detect layer expects {nc} classes (no = {no}) but its conv emits {actual_nc} (no = {actual_no})"
    return make_diagnosis(parsed, "HF101", summary, facts, causes)


# --- any other view / reshape / unflatten -------------------------------------------------------------


@rule(
    "HF101",
    priority=60,
    needs=(
        "is invalid for input of",
        "don't multiply up to the size of dim",
        "only one dimension can be inferred",
    ),
)
def general_view(parsed: ParsedError) -> Diagnosis | None:
    req = view_request(parsed.message)
    if req is None:
        if _TWO_INFERRED.search(parsed.message):
            return _two_inferred(parsed)
        return None
    if any(d < -1 for d in req.dims) or req.dims.count(-1) > 1:
        return None
    facts = _general_facts(req)
    alternatives = one_dim_fixes(req)
    causes = [
        Cause(
            summary=f"dimension {i} should be {value}, not {req.dims[i]}",
            confidence=0.6 if j == 0 else 0.4,
            fix=f".{_op_call(req, _replace(req.dims, i, value))}",
        )
        for j, (i, value) in enumerate(alternatives[:3])
    ]
    causes.append(
        Cause(
            summary="the tensor reaching the view is not the shape the code assumes "
            "(batch size, input resolution or channel count differ)",
            confidence=0.5 if alternatives else 0.7,
            fix="print `x.shape` just before the view, and use -1 for the dimension that should absorb the rest",
        )
    )
    flatten = _flatten_for_a_linear(req)
    if flatten is not None:
        facts.append(flatten.summary.split(": ", 1)[0])
        causes.insert(0, flatten)
    what = "reshape" if req.op == "view" else "unflatten"
    summary = f"cannot {what} {fmt(req.size)} elements into {shape_str(req.dims)}"
    return make_diagnosis(parsed, "HF101", summary, facts, causes)


def _flatten_for_a_linear(req: ViewRequest) -> Cause | None:
    """``x.view(-1, K)`` / ``x.view(N, K)`` flattens a feature map of K = C*h*w values for a Linear: when the
    size does not fit, the map is another size than the one K was computed for (another input resolution).
    The fix keeps K (and the Linear built for it) by pooling the map to the size it assumed; it does not
    fold the extra positions into the batch."""
    if len(req.dims) != 2 or req.dims[1] < 64:
        return None
    k = req.dims[1]
    if req.size % k == 0 and (req.dims[0] == -1 or req.size // k == req.dims[0]):
        return None
    return Cause(
        f"`view(-1, {k})` flattens {k} values per sample for the layer after it: the feature map reaching it is "
        "another size than the one it was written for (another input resolution); -1 would fold the extra "
        "positions into the batch",
        0.65,
        fix=f"pool to the size {k} was computed for before the view, e.g. x = nn.AdaptiveAvgPool2d((h, w))(x) with "
        f"C*h*w = {k}; and x.view(x.size(0), -1) so the batch stays the batch",
    )


def _general_facts(req: ViewRequest) -> list[str]:
    if req.inferred:
        known = prod(req.known)
        if known == 0:
            return [f"a known dimension is 0, so -1 cannot be inferred from {fmt(req.size)} elements"]
        return [
            f"{product_expr(req.known)} elements per unit of -1",
            _divides_fact(known, req.size),
            f"-1 would have to be {fmt(req.size)} / {fmt(known)} = {fmt(req.size / known)}",
        ]
    return [f"the shape needs {product_expr(req.dims)} elements, the tensor has {fmt(req.size)}"]


def one_dim_fixes(req: ViewRequest) -> list[tuple[int, int]]:
    """(dim, value) pairs: changing that one dim to that value makes the view fit, nearest first."""
    fixes = []
    known = prod(req.known)  # once: per dimension it made a 10,000-dimension shape take a minute
    for i, d in enumerate(req.dims):
        if d == -1:
            continue
        others = known // d if d else 0
        if others <= 0 or req.size % others:
            continue
        if req.inferred:
            # any divisor of size/others works with -1; the natural one leaves -1 = 1
            value = _nearest_divisor(req.size // others, d)
        else:
            value = req.size // others
        if value != d and value > 0:
            fixes.append((i, value))
    return sorted(fixes, key=lambda f: abs(f[1] - req.dims[f[0]]) / max(req.dims[f[0]], 1))


def _nearest_divisor(n: int, target: int) -> int:
    best, i = 1, 1
    while i * i <= n:
        if n % i == 0:
            for divisor in (i, n // i):
                if abs(divisor - target) < abs(best - target):
                    best = divisor
        i += 1
    return best


def _replace(dims: list[int], i: int, value: int) -> list[int]:
    return dims[:i] + [value] + dims[i + 1 :]


def _op_call(req: ViewRequest, dims: list[int]) -> str:
    args = ", ".join(str(d) for d in dims)
    return f"view({args})" if req.op == "view" else f"unflatten(dim, ({args}))"


def _two_inferred(parsed: ParsedError) -> Diagnosis:
    cause = Cause(
        summary="the shape has more than one -1; only one dimension can be inferred",
        confidence=0.9,
        fix="give every dimension but one explicitly, e.g. `x.view(x.size(0), -1)`",
    )
    return make_diagnosis(parsed, "HF101", "a view has more than one `-1`", [], [cause])


# --- HF129: a window partition of a Swin-style backbone ----------------------------------------------


@rule("HF129", priority=45, needs="is invalid for input of")
def window_partition_view(parsed: ParsedError) -> Diagnosis | None:
    """``x.view(B, H // w, w, W // w, w, C)`` (partition) or ``windows.view(B, H // w, W // w, w, w, -1)``
    (reverse) on a map whose sides are not multiples of the window ``w``."""
    req = view_request(parsed.message)
    if req is None or len(req.dims) != 6 or req.op != "view":
        return None
    b, d1, d2, d3, d4, c = req.dims
    if d2 == d4 and d2 in SWIN_WINDOWS and -1 not in (b, d1, d3):
        window, rows, cols = d2, d1, d3
    elif d3 == d4 and d3 in SWIN_WINDOWS and -1 not in (b, d1, d2):
        window, rows, cols = d3, d1, d2
    else:
        return None
    if min(b, rows, cols) <= 0:
        return None
    facts = [
        f"a window partition view [B, H/w, w, W/w, w, C]: B = {b}, window w = {window}, "
        f"{rows}x{cols} windows of {window}x{window}, so it assumes an {rows * window}x{cols * window} map"
    ]
    if c > 0 and req.size % (b * c) == 0:
        tokens = req.size // (b * c)
        side = math.isqrt(tokens)
        square = f" = {side}x{side}" if side * side == tokens else ""
        facts.append(f"the tensor has {fmt(req.size)} / ({b}*{c}) = {fmt(tokens)} tokens per image{square}")
        if side * side == tokens and side % window:
            lower, upper = side // window * window, -(-side // window) * window
            facts.append(f"{side} is not a multiple of the window {window}: {lower} or {upper} would be")
    causes = [
        Cause(
            f"the feature map at this stage is not a multiple of the window size {window}",
            0.75,
            fix=f"pad the map to a multiple of {window} before the partition (torchvision's swin_t does), or resize the "
            f"input so every stage is a multiple of {window} (Swin-T: multiples of 224)",
        ),
        Cause(
            "the window size does not divide this stage's map: build the model with a window that does",
            0.3,
            attribute="window_size",
            fix="window_size = a divisor of each stage's side (e.g. 7 for 224 inputs, 12 for 384)",
        ),
    ]
    return make_diagnosis(
        parsed,
        "HF129",
        f"{'an' if str(window).startswith(('8', '11', '18')) else 'a'} {window}x{window} window partition does not fit "
        f"the token map ({shape_str(req.dims)})",
        facts,
        causes,
    )


# --- HF101: a reshape of an empty tensor --------------------------------------------------------------


@rule("HF101", priority=50, needs="cannot reshape tensor of 0 elements")
def empty_view(parsed: ParsedError) -> Diagnosis | None:
    """``x.view(n, -1)`` of a tensor with no elements: -1 could be anything. The tensor is empty because its
    batch or its items are: an image without annotations, no proposals, the last (empty) batch."""
    m = _EMPTY.search(parsed.message)
    if not m:
        return None
    dims = parse_ints(m["dims"])
    zero = [i for i, d in enumerate(dims) if d == 0]
    facts = [
        f"the tensor has 0 elements, so `-1` in {shape_str(dims)} could be any size",
        f"dimension {zero[0]} is 0: there are no items there (no boxes, no tokens, an empty batch)"
        if zero
        else "a known dimension is 0",
    ]
    detection = any((f.library_file or "").startswith("models/detection/") for f in parsed.frames) or any(
        "roi" in (f.file + (f.function or "")).lower() or "box" in (f.source or "") for f in parsed.frames
    )
    per_object = zero[:1] == [0] and (detection or TORCHVISION_HEAD_CHANNELS in dims)  # [num_rois, 256, -1]
    causes = [
        Cause(
            "an image without annotations (no boxes) reached a step that reshapes per object: drop such images from "
            "training, or give them empty targets the model supports",
            0.7 if detection or per_object else 0.45,
            fix="dataset = [s for s in dataset if len(s[1]['boxes'])]  # or torch.zeros((0, 4)) boxes where the model "
            "takes empty targets",
        ),
        Cause(
            "an empty batch: the last batch of an epoch (or a filtered one) has no samples left",
            0.5,
            fix="DataLoader(..., drop_last=True); skip a batch when x.numel() == 0",
        ),
        Cause(
            "name the size instead of -1, so an empty tensor reshapes as well",
            0.35,
            fix=f".reshape({', '.join('C' if d == -1 else str(d) for d in dims)})  # C: the known size of that axis",
        ),
    ]
    return make_diagnosis(
        parsed,
        "HF101",
        f"cannot reshape an empty tensor into {shape_str(dims)} (-1 is ambiguous)",
        facts,
        causes,
    )


# --- HF102: view on a non-contiguous tensor --------------------------------------------------------------


@rule("HF102", priority=50, needs="view size is not compatible with input tensor's size and stride")
def non_contiguous_view(parsed: ParsedError) -> Diagnosis | None:
    if not _NON_CONTIGUOUS.search(parsed.message):
        return None
    facts = [
        "`view` never copies: it needs the elements it merges to be contiguous in memory",
        "a `transpose`, `permute`, `expand` or strided slice before it made the tensor non-contiguous",
    ]
    line = _failing_view_line(parsed)
    causes = [
        Cause(
            "the tensor was permuted or transposed before `view`",
            0.8,
            fix=line.replace(".view(", ".reshape(", 1)
            if line
            else "x.reshape(...)  # copies only when it must",
        ),
        Cause(
            "the layout must stay the same for later views",
            0.5,
            fix=line.replace(".view(", ".contiguous().view(", 1) if line else "x.contiguous().view(...)",
        ),
    ]
    return make_diagnosis(parsed, "HF102", "`view` on a non-contiguous tensor", facts, causes)


def _failing_view_line(parsed: ParsedError) -> str | None:
    """The innermost traceback source line that calls ``.view(``: the fix rewrites that very line."""
    for frame in reversed(parsed.frames):
        if frame.source and ".view(" in frame.source:
            return frame.source
    return None
