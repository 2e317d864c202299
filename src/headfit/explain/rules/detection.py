"""torchvision detection: HF116 invalid targets, HF117 builder weights vs num_classes, HF118 anchor sizes
per feature map, HF119 RetinaNet/FCOS postprocess split, HF120 RoI box predictor sized for other classes."""

from __future__ import annotations

import itertools
import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, frames_mention, size_list
from headfit.families._facts import COCO_CLASSES, DENSE, PRETRAINED_CLASS_COUNTS, PRETRAINED_KEYPOINTS, RCNN

_BOXES_SHAPE = re.compile(
    r"Expected target boxes to be a tensor of shape \[N, 4\], got torch\.Size\(\[([\d, ]*)\]\)"
)
_BOXES_TYPE = re.compile(r"Expected target boxes to be of type Tensor, got <class '([\w.]+)'>")
_DEGENERATE = re.compile(
    r"All bounding boxes should have positive height and width\. Found inval?id box \[([-\d.e, ]+)\] for target at index (\d+)"
)  # torchvision < 0.9 spelled it "invaid"
_NO_TARGETS = re.compile(r"targets should not be none when in training mode")
_PINNED = re.compile(r"The parameter '(\w+)' expected value (\S+) but got (\S+) instead")
_ANCHORS = re.compile(
    r"Anchors should be Tuple\[Tuple\[int\]\] because each feature map could potentially have different sizes"
)
_SPLIT = re.compile(
    r"split_with_sizes expects split_sizes to sum exactly to (\d+) \(input tensor's size at dimension (-?\d+)\), "
    r"but got split_sizes=\[([-\d, ]*)\]"
)
_INDEX = re.compile(r"index (-?\d+) is out of bounds for dimension (\d+) with size (\d+)")

PRETRAINED_SETS = {str(count): what for count, what in PRETRAINED_CLASS_COUNTS.items()} | {
    str(PRETRAINED_KEYPOINTS): f"COCO person keypoints ({PRETRAINED_KEYPOINTS} keypoints)"
}
RETINANET_ANCHORS = DENSE.anchors["RetinaNet"]
PREDICTOR = RCNN.head
CLASSIFICATION_HEAD = DENSE.head


# --- HF116 ---------------------------------------------------------------------------------------


@rule("HF116", priority=60, needs="Expected target boxes to be a tensor of shape")
def boxes_shape(parsed: ParsedError) -> Diagnosis | None:
    m = _BOXES_SHAPE.search(parsed.message)
    if not m:
        return None
    shape = size_list(m[1])
    facts = [f"each target's `boxes` must be a float tensor [N, 4] (x1, y1, x2, y2); got {shape_str(shape)}"]
    return diagnose(
        "HF116",
        parsed,
        f"target boxes have shape {shape_str(shape)}, not [N, 4]",
        facts,
        _box_shape_causes(shape),
    )


def _box_shape_causes(shape: list[int]) -> list[Cause]:
    if shape == [0] or (shape and 0 in shape):
        return [
            Cause(
                "an image without objects: its empty boxes must still have 4 columns",
                0.85,
                fix="target['boxes'] = torch.zeros((0, 4), dtype=torch.float32); target['labels'] = torch.zeros((0,), dtype=torch.int64)",
            )
        ]
    if shape == [4]:
        return [Cause("a single box without the N axis", 0.8, fix="target['boxes'] = boxes.reshape(-1, 4)")]
    if len(shape) == 3 and shape[-1] == 4:
        return [
            Cause(
                "the boxes carry an extra leading axis (a batch dimension or a list of lists)",
                0.7,
                fix=f"target['boxes'] = boxes.reshape(-1, 4)  # {shape_str(shape)} -> [{fmt(shape[0] * shape[1])}, 4]",
            )
        ]
    if len(shape) == 2 and shape[1] == 5:
        return [
            Cause(
                "the boxes carry a fifth column (the label, or a score) next to x1, y1, x2, y2",
                0.7,
                fix="target['labels'] = boxes[:, 4].long(); target['boxes'] = boxes[:, :4]  # if column 4 is the label",
            )
        ]
    return [
        Cause(
            "the boxes are not laid out as one row of 4 coordinates per object",
            0.5,
            fix="target['boxes'] = boxes.reshape(-1, 4)",
        )
    ]


@rule("HF116", priority=60, needs="Expected target boxes to be of type Tensor")
def boxes_type(parsed: ParsedError) -> Diagnosis | None:
    m = _BOXES_TYPE.search(parsed.message)
    if not m:
        return None
    return diagnose(
        "HF116",
        parsed,
        f"target boxes are a `{m[1]}`, not a tensor",
        ["each target must be a dict of tensors: `boxes` float [N, 4], `labels` int64 [N]"],
        [
            Cause(
                f"the dataset returns the boxes as a Python `{m[1]}`",
                0.85,
                fix="target['boxes'] = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)",
            )
        ],
    )


@rule("HF116", priority=60, needs="All bounding boxes should have positive height and width")
def degenerate_box(parsed: ParsedError) -> Diagnosis | None:
    m = _DEGENERATE.search(parsed.message)
    if not m:
        return None
    try:
        coords = [float(x) for x in m[1].split(",")]
    except ValueError:
        return None
    if len(coords) != 4:
        return None
    x1, y1, x2, y2 = coords
    width, height = x2 - x1, y2 - y1
    facts = [
        f"box {_num(x1)}, {_num(y1)}, {_num(x2)}, {_num(y2)} read as x1, y1, x2, y2: "
        f"width {_num(x2)} - {_num(x1)} = {_num(width)}, height {_num(y2)} - {_num(y1)} = {_num(height)}",
        "the numbers are after the model's own resize (GeneralizedRCNNTransform), so they are scaled from your annotation",
    ]
    causes = [
        Cause(
            "a zero-size or inverted box in the annotations (or one clipped to nothing by an augmentation)",
            0.4,
            fix="keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]); boxes, labels = boxes[keep], labels[keep]",
        )
    ]
    if width <= 0 and x2 > 0 and y2 > 0:
        facts.append(
            f"read as x, y, w, h it is a valid box: {_num(x1)}, {_num(y1)}, {_num(x1 + x2)}, {_num(y1 + y2)} "
            f"({_num(x2)} wide, {_num(y2)} high)"
        )
        causes.insert(
            0,
            Cause(
                "the boxes are in x, y, width, height (COCO json) format; torchvision wants x1, y1, x2, y2",
                0.75 if height <= 0 else 0.55,
                fix='boxes = torchvision.ops.box_convert(boxes, in_fmt="xywh", out_fmt="xyxy")',
            ),
        )
    return diagnose(
        "HF116",
        parsed,
        f"target {m[2]} has a box with non-positive size (width {_num(width)}, height {_num(height)})",
        facts,
        causes,
    )


def _num(x: float) -> str:
    return fmt(int(x)) if float(x).is_integer() else f"{x:g}"


@rule("HF116", priority=60, needs="targets should not be none when in training mode")
def targets_missing(parsed: ParsedError) -> Diagnosis | None:
    if not _NO_TARGETS.search(parsed.message):
        return None
    return diagnose(
        "HF116",
        parsed,
        "a detector in train mode was called without targets",
        [
            "torchvision detectors compute losses in train mode (they need targets) and return detections in eval mode"
        ],
        [
            Cause(
                "inference with the model still in train mode",
                0.8,
                module="",
                fix="model.eval()  # then: with torch.no_grad(): detections = model(images)",
            ),
            Cause(
                "a training step forgot to pass the targets", 0.3, fix="loss_dict = model(images, targets)"
            ),
        ],
    )


# --- HF117 ---------------------------------------------------------------------------------------


@rule("HF117", priority=60, needs="The parameter '")
def builder_pinned_parameter(parsed: ParsedError) -> Diagnosis | None:
    m = _PINNED.search(parsed.message)
    if not m:
        return None
    param, pinned, given = m[1], m[2], m[3]
    facts = [
        f"with `weights=`, torchvision pins `{param}` to the value the weights were trained with: {pinned}"
    ]
    if pinned in PRETRAINED_SETS and param in ("num_classes", "num_keypoints"):
        facts.append(f"{pinned} is the size of the {PRETRAINED_SETS[pinned]}")
    return diagnose(
        "HF117",
        parsed,
        f"the pretrained weights fix `{param}={pinned}`, but `{param}={given}` was passed",
        facts,
        _pinned_causes(param, pinned, given, _builder_name(parsed)),
    )


def _builder_name(parsed: ParsedError) -> str | None:
    """The torchvision builder in the traceback (e.g. ``fasterrcnn_resnet50_fpn``), when there is one."""
    for frame in reversed(parsed.frames):
        name = frame.function or ""
        if (
            frame.library == "torchvision"
            and (frame.library_file or "").startswith("models/")
            and name.isidentifier()
        ):
            if not name.startswith("_") and name not in ("wrapper", "inner_wrapper"):
                return name
    return None


def _pinned_causes(param: str, pinned: str, given: str, builder: str | None) -> list[Cause]:
    spec = f"torchvision:{builder}" if builder else "torchvision:BUILDER"
    builder = builder or "builder"
    if param == "aux_loss":
        return [
            Cause(
                "the pretrained segmentation weights include the auxiliary classifier",
                0.8,
                fix=f"model = {builder}(weights='DEFAULT')  # aux_loss=True; then drop it: model.aux_classifier = None",
            )
        ]
    if param == "num_keypoints":
        return [
            Cause(
                f"build with the pretrained {pinned} keypoints, then replace the keypoint predictor",
                0.8,
                module=RCNN.keypoint_head,
                fix=f"model = keypointrcnn_resnet50_fpn(weights='DEFAULT'); "
                f"model.{RCNN.keypoint_head} = KeypointRCNNPredictor(512, {given})",
            )
        ]
    detection = pinned == str(COCO_CLASSES)
    k = str(int(given) - 1) if detection and given.isdigit() and int(given) > 1 else given
    return [
        Cause(
            f"build with the pretrained head ({pinned} classes), then re-head for {given}",
            0.7,
            fix=f"headfit adapt {spec} --num-classes {k} -o model.pt  # or in Python: "
            f"model = {builder}(weights='DEFAULT'); headfit.adapt(model, num_classes={k})",
        ),
        Cause(
            f"build the {given}-class model without weights and load the pretrained ones, skipping the head",
            0.5,
            fix=f"model = {builder}(weights=None, weights_backbone=None, num_classes={given}); "
            "headfit.load_weights(model, 'pretrained.pth')  # loads every key whose shape fits",
        ),
    ]


# --- HF118 ---------------------------------------------------------------------------------------


@rule("HF118", priority=60, needs="Anchors should be Tuple[Tuple[int]]")
def anchor_feature_map_count(parsed: ParsedError) -> Diagnosis | None:
    if not _ANCHORS.search(parsed.message):
        return None
    facts = [
        "AnchorGenerator needs one tuple of sizes and one tuple of aspect ratios per feature map: len(sizes) == number of feature maps",
        "a ResNet FPN backbone gives 5 feature maps ('0', '1', '2', '3', 'pool'); a MobileNetV3 FPN gives 3; a plain backbone gives 1",
    ]
    causes = [
        Cause(
            "an FPN backbone (5 maps) with anchors written for one map",
            0.5,
            module="rpn.anchor_generator",
            fix="AnchorGenerator(sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)",
        ),
        Cause(
            "a single-map backbone (`backbone.out_channels = C`) with anchors written for an FPN",
            0.45,
            module="rpn.anchor_generator",
            fix="AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))",
        ),
    ]
    return diagnose(
        "HF118",
        parsed,
        "the anchor generator's sizes do not give one tuple per feature map",
        facts,
        causes,
    )


# --- HF119 ---------------------------------------------------------------------------------------


@rule("HF119", priority=60, needs="split_with_sizes expects split_sizes to sum exactly to")
def split_sizes_mismatch(parsed: ParsedError) -> Diagnosis | None:
    m = _SPLIT.search(parsed.message)
    if not m:
        return None
    actual, dim, sizes = int(m[1]), int(m[2]), parse_ints(m[3])
    fcos = frames_mention(parsed, "fcos.py")
    retinanet = frames_mention(parsed, "retinanet.py")
    if not (fcos or retinanet or (not parsed.frames and _looks_per_level(dim, sizes))):
        return None  # another split (tensors.py, HF108)
    total = sum(sizes)
    facts = [
        f"split_sizes sum to {' + '.join(map(fmt, sizes))} = {fmt(total)}, but dimension {dim} has {fmt(actual)}"
    ]
    causes = []
    if total > 0 and actual > 0:
        if not retinanet:
            causes.append(_fcos_cause(actual, total, facts, 0.8 if fcos else 0.45))
        if not fcos:
            causes.append(_retinanet_cause(actual, total, facts, 0.8 if retinanet else 0.45))
    causes.append(
        Cause(
            "a tensor split per level does not have the per-level counts the code computed",
            0.2,
            fix="print the shapes of the tensors being split and of the split sizes",
        )
    )
    return diagnose(
        "HF119",
        parsed,
        f"split sizes sum to {fmt(total)} but the tensor has {fmt(actual)} at dimension {dim}",
        facts,
        causes,
    )


def _looks_per_level(dim: int, sizes: list[int]) -> bool:
    """RetinaNet/FCOS split dimension 1 by the locations of each FPN level (3 to 6 of them), and each level
    has a quarter of the previous one's locations (about; odd sizes round up)."""
    shrinking = all(0 < later * 2 <= earlier for earlier, later in itertools.pairwise(sizes))
    return dim == 1 and 3 <= len(sizes) <= 6 and shrinking


def _fcos_cause(actual: int, total: int, facts: list[str], confidence: float) -> Cause:
    """FCOS splits the cls_logits ([N, HW*A', K]) by HW per level: actual/total = A' = channels / num_classes."""
    ratio = actual / total
    facts.append(
        f"FCOS (1 anchor per location) splits by H*W per level: {fmt(actual)} / {fmt(total)} = {ratio:.3g} rows per location"
    )
    return Cause(
        f"FCOS: `cls_logits` emits {ratio:.3g}x `num_classes` channels (it must emit exactly num_classes); "
        "the conv and the attribute disagree",
        confidence,
        module=CLASSIFICATION_HEAD,
        attribute="num_classes",
        fix=f"model.{DENSE.head}.num_classes = model.{DENSE.logits_path}.out_channels",
    )


def _retinanet_cause(actual: int, total: int, facts: list[str], confidence: float) -> Cause:
    """RetinaNet derives A from cls_logits and splits bbox_regression ([N, HW*9, 4]): total/actual = A'/9."""
    ratio = total / actual
    anchors = ratio * RETINANET_ANCHORS
    facts.append(
        f"RetinaNet (9 anchors) splits by H*W*A with A read from cls_logits: {fmt(total)} / {fmt(actual)} = {ratio:.3g}, "
        f"so cls_logits gave A = {ratio:.3g} x 9 = {anchors:.3g} 'anchors' of num_classes each"
    )
    return Cause(
        f"RetinaNet: `cls_logits` emits {ratio:.3g}x num_anchors*num_classes channels: it was built for "
        f"{ratio:.3g}x as many classes as `num_classes` says",
        confidence,
        module=CLASSIFICATION_HEAD,
        attribute="num_classes",
        fix=f"h = model.{DENSE.head}; h.num_classes = h.cls_logits.out_channels // h.num_anchors",
    )


# --- HF120 ---------------------------------------------------------------------------------------


@rule("HF120", priority=60, needs="is out of bounds for dimension")
def roi_index_out_of_bounds(parsed: ParsedError) -> Diagnosis | None:
    m = _INDEX.search(parsed.message)
    if not m:
        return None
    in_roi_heads = frames_mention(parsed, "roi_heads.py", "postprocess_detections")
    if parsed.frames and not in_roi_heads:
        return None  # an ordinary indexing error elsewhere: not this family
    index, dim, size = int(m[1]), int(m[2]), int(m[3])
    facts = [
        f"index {index} into dimension {dim} of size {size}: valid indices are 0..{size - 1}"
        if size
        else f"dimension {dim} is empty"
    ]
    if not in_roi_heads:
        facts.append(
            "no traceback: if this came from a torchvision R-CNN's `roi_heads.postprocess_detections`, read on"
        )
    facts.append(
        "in `postprocess_detections` the boxes have (bbox_pred classes - 1) x proposals rows and the scores "
        "(cls_score classes - 1) x proposals: an index past the boxes means bbox_pred has fewer classes than cls_score"
    )
    if size == 0:
        facts.append(
            "size 0: bbox_pred has 4 outputs (1 class), so no box is left after dropping the background"
        )
    elif size > 0 and index >= size:
        facts.append(
            f"cls_score has more than {index / size:.3g}x as many foreground classes as bbox_pred ({index} / {size})"
        )
    causes = [
        Cause(
            "`roi_heads.box_predictor.bbox_pred` is sized for another class count than `cls_score` "
            "(bbox_pred.out_features must be 4 * cls_score.out_features)",
            0.85 if in_roi_heads else 0.4,
            module=f"{PREDICTOR}.bbox_pred",
            attribute="out_features",
            fix=f"model.{RCNN.head} = FastRCNNPredictor(model.{RCNN.head}.cls_score.in_features, K + 1)",
        ),
        Cause(
            "an index computed for a larger tensor (a label or position past the end)",
            0.2 if in_roi_heads else 0.5,
            fix=f"assert index < {size}  # find where the index was computed",
        ),
    ]
    return diagnose(
        "HF120", parsed, f"index {index} is past the end of a dimension of size {size}", facts, causes
    )
