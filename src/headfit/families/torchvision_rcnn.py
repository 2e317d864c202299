"""torchvision Faster / Mask / Keypoint R-CNN (``GeneralizedRCNN``), built by a builder or assembled by hand.

The class count lives only in tensor shapes: ``roi_heads.box_predictor.cls_score`` has K+1 outputs (index 0
is the background), ``bbox_pred`` 4 per class, Mask R-CNN's ``mask_fcn_logits`` one channel per class.
A half-adapted Mask R-CNN (box predictor only) runs without error and predicts masks from COCO channels,
which is why lint compares the predictors with each other and not just with an attribute.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from headfit.diagnosis import Problem
from headfit.errors import UsageError
from headfit.families import _detection_common as common
from headfit.families._facts import RCNN
from headfit.families._util import (
    check_keep,
    check_num_classes,
    copy_rows,
    last_linear,
    new_conv_like,
    new_linear_like,
)
from headfit.families.base import AdaptSummary, HeadInfo, Recipe, register_family
from headfit.families.torchvision_detection import DetectionFamily

BOX = RCNN.head
MASK = RCNN.mask_head
KEYPOINT = RCNN.keypoint_head


@register_family
class RCNNFamily(DetectionFamily):
    """Faster, Mask and Keypoint R-CNN: softmax over K+1 classes, background at index 0."""

    name = RCNN.family
    priority = 10
    counts_background = RCNN.background
    class_head = RCNN.head
    selects_by_value = True  # the RPN's NMS runs before the box and mask heads
    adapt_options = ("keep", "num_keypoints")
    examples = ("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",)

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return isinstance(model, GeneralizedRCNN) and hasattr(model.roi_heads, "box_predictor")

    def num_classes(self, model: nn.Module) -> int | None:
        return int(model.roi_heads.box_predictor.cls_score.out_features) - 1

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        box = model.roi_heads.box_predictor
        heads = [
            HeadInfo(f"{BOX}.cls_score", "box_classifier", box.cls_score.out_features),
            HeadInfo(f"{BOX}.bbox_pred", "box_regressor", box.bbox_pred.out_features // 4),
        ]
        mask = _predictor(model, "mask_predictor")
        if mask is not None:
            heads.append(HeadInfo(f"{MASK}.mask_fcn_logits", "mask", mask.mask_fcn_logits.out_channels))
        kp = _predictor(model, "keypoint_predictor")
        if kp is not None:
            attrs = {f"{KEYPOINT}.out_channels": getattr(kp, "out_channels", None)}
            heads.append(
                HeadInfo(f"{KEYPOINT}.kps_score_lowres", "keypoint", kp.kps_score_lowres.out_channels, attrs)
            )
        return heads

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        problems = _lint_box_predictor(model.roi_heads.box_predictor)
        problems += _lint_mask_predictor(model)
        problems += _lint_keypoint_predictor(model)
        problems += _lint_feature_widths(model)
        problems += _lint_rpn(model)
        problems += common.lint_anchor_generator(
            model.rpn.anchor_generator, "rpn.anchor_generator", model.backbone
        )
        return problems

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """Replace ``cls_score`` and ``bbox_pred`` (and ``mask_fcn_logits``) for K+1 outputs."""
        num_classes = check_num_classes(num_classes)
        options = self.checked_options(options)
        outputs = self.outputs_for(num_classes)
        box = model.roi_heads.box_predictor
        rows = _background_keep(options.get("keep"), num_classes, box.cls_score.out_features)
        new_cls = new_linear_like(box.cls_score, outputs)
        new_box = new_linear_like(box.bbox_pred, 4 * outputs)
        if rows is not None:
            copy_rows(new_cls, box.cls_score, rows)
            copy_rows(new_box, box.bbox_pred, common.box_rows(rows))
        box.cls_score, box.bbox_pred = new_cls, new_box
        replaced = [f"{BOX}.cls_score", f"{BOX}.bbox_pred"]
        arch = type(model).__name__.replace("RCNN", " R-CNN")
        notes = [
            f"{arch} counts background: the box predictor now has {outputs} outputs for your "
            f"{num_classes} classes (labels 1..{num_classes}, 0 is the background)"
        ]
        mask = _predictor(model, "mask_predictor")
        if mask is not None:
            old = mask.mask_fcn_logits
            new = new_conv_like(old, outputs, init=_kaiming_fan_out(zero_bias=False))
            if rows is not None:
                copy_rows(new, old, rows)
            mask.mask_fcn_logits = new
            replaced.append(f"{MASK}.mask_fcn_logits")
            notes.append(f"the mask predictor was re-headed too: {outputs} mask channels, one per box class")
        attributes = {}
        if options.get("num_keypoints") is not None:
            attributes.update(_adapt_keypoints(model, options["num_keypoints"], replaced, notes))
        return AdaptSummary(
            family=self.name,
            num_classes=num_classes,
            head_outputs=outputs,
            replaced=replaced,
            attributes=attributes,
            notes=notes,
            kept_rows=list(rows or []),
        )

    # -- smoke step (verification after adapt) ---------------------------------------------------------

    def extra_targets(self, model: nn.Module, target: dict, image: torch.Tensor) -> dict[str, torch.Tensor]:
        extra = {}
        x1, y1, x2, y2 = (int(v) for v in target["boxes"][0].tolist())
        if _predictor(model, "mask_predictor") is not None:
            masks = torch.zeros(1, *image.shape[-2:], dtype=torch.uint8, device=image.device)
            masks[0, y1:y2, x1:x2] = 1
            extra["masks"] = masks
        kp = _predictor(model, "keypoint_predictor")
        if kp is not None:
            n = kp.kps_score_lowres.out_channels
            xs = torch.linspace(x1 + 1, x2 - 1, n, device=image.device)
            ys = torch.linspace(y1 + 1, y2 - 1, n, device=image.device)
            extra["keypoints"] = torch.stack([xs, ys, torch.ones_like(xs)], dim=1)[None].to(image.dtype)
        return extra

    # -- training --------------------------------------------------------------------------------------

    def training_recipe(self, model: nn.Module) -> Recipe | None:
        arch = type(model).__name__.replace("RCNN", " R-CNN")
        return Recipe(
            lr=0.02,
            batch=16,
            source=f"torchvision's {arch} reference recipe, 8 GPUs x 2 images",
        )

    def detections_per_image(self, model: nn.Module) -> int | None:
        return int(model.roi_heads.detections_per_img)

    def set_detections_per_image(self, model: nn.Module, count: int) -> None:
        model.roi_heads.detections_per_img = int(count)

    def target_needs(self, model: nn.Module) -> dict[str, str]:
        """Mask R-CNN trains on instance masks and Keypoint R-CNN on keypoints; without them in the
        data, the same model without that head is Faster R-CNN (same backbone, RPN and box head)."""
        needs = {}
        v2 = type(model.roi_heads.box_head).__name__ == "FastRCNNConvFCHead"  # the _v2 builders' box head
        faster = "torchvision:fasterrcnn_resnet50_fpn_v2" if v2 else "torchvision:fasterrcnn_resnet50_fpn"
        if _predictor(model, "mask_predictor") is not None:
            needs["masks"] = faster
        if _predictor(model, "keypoint_predictor") is not None:
            needs["keypoints"] = faster
        return needs

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        box = model.roi_heads.box_predictor
        facts = [
            f"`{BOX}.cls_score` has {box.cls_score.out_features} outputs (background + "
            f"{box.cls_score.out_features - 1} classes); `bbox_pred` has {box.bbox_pred.out_features} "
            f"= 4 * {box.bbox_pred.out_features / 4:g}"
        ]
        mask = _predictor(model, "mask_predictor")
        if mask is not None:
            facts.append(f"`{MASK}.mask_fcn_logits` emits {mask.mask_fcn_logits.out_channels} channels")
        return facts


# -- heads -----------------------------------------------------------------------------------------------


def _predictor(model: nn.Module, name: str) -> nn.Module | None:
    return getattr(model.roi_heads, name, None)


# -- lint ------------------------------------------------------------------------------------------------


def _lint_box_predictor(box: nn.Module) -> list[Problem]:
    """HF206: ``bbox_pred`` has 4 outputs per ``cls_score`` class."""
    classes, boxes = box.cls_score.out_features, box.bbox_pred.out_features
    if boxes == 4 * classes:
        return []
    summary = f"`{BOX}.bbox_pred` has {boxes} outputs ({boxes / 4:g} classes x 4) but `cls_score` has {classes} classes"
    facts = [
        f"`{BOX}.cls_score.out_features` = {classes} (background included)",
        f"`{BOX}.bbox_pred.out_features` = {boxes}, expected 4 * {classes} = {4 * classes}",
        "postprocess decodes one box per class column; missing columns fail with "
        "`index ... is out of bounds for dimension 1 with size 0`, extra ones are silently misread",
    ]
    fix = (
        f"model.{BOX} = torchvision.models.detection.faster_rcnn.FastRCNNPredictor("
        f"{box.cls_score.in_features}, {classes})"
    )
    return [common.problem("HF206", BOX, "bbox_pred", summary, facts, fix)]


def _lint_mask_predictor(model: nn.Module) -> list[Problem]:
    """HF207: Mask R-CNN's mask channels follow the box classes (a half-adapted model runs silently)."""
    mask = _predictor(model, "mask_predictor")
    if mask is None:
        return []
    classes, channels = (
        model.roi_heads.box_predictor.cls_score.out_features,
        mask.mask_fcn_logits.out_channels,
    )
    if classes == channels:
        return []
    summary = f"`{MASK}` predicts {channels} mask channels but the box predictor has {classes} classes"
    facts = [
        f"`{BOX}.cls_score.out_features` = {classes}",
        f"`{MASK}.mask_fcn_logits.out_channels` = {channels}",
        "masks are picked by the box label: label k uses mask channel k, so new classes get the masks "
        "of the old head's classes (no error is raised)"
        if channels > classes
        else "a label above the mask channels makes mask selection fail",
    ]
    fix = (
        f"model.{MASK} = torchvision.models.detection.mask_rcnn.MaskRCNNPredictor("
        f"{mask.conv5_mask.in_channels}, {mask.conv5_mask.out_channels}, {classes})"
    )
    return [common.problem("HF207", MASK, "mask_fcn_logits", summary, facts, fix)]


def _lint_keypoint_predictor(model: nn.Module) -> list[Problem]:
    """HF208: ``keypoint_predictor.out_channels`` states what ``kps_score_lowres`` emits."""
    kp = _predictor(model, "keypoint_predictor")
    if kp is None or not hasattr(kp, "out_channels") or kp.out_channels == kp.kps_score_lowres.out_channels:
        return []
    emitted = kp.kps_score_lowres.out_channels
    summary = (
        f"`{KEYPOINT}.out_channels` says {kp.out_channels} keypoints but `kps_score_lowres` emits {emitted}"
    )
    facts = [
        f"`{KEYPOINT}.kps_score_lowres.out_channels` = {emitted}",
        f"`{KEYPOINT}.out_channels` = {kp.out_channels}",
    ]
    return [
        common.problem(
            "HF208", KEYPOINT, "out_channels", summary, facts, f"model.{KEYPOINT}.out_channels = {emitted}"
        )
    ]


def _lint_feature_widths(model: nn.Module) -> list[Problem]:
    """HF209: each predictor's input width equals what its feature head (box/mask/keypoint) emits."""
    rh = model.roi_heads
    box_head = last_linear(rh.box_head) if rh.box_head is not None else None
    pairs = [("box_head", box_head[1].out_features if box_head else None, f"{BOX}.cls_score", "in_features")]
    if _predictor(model, "mask_predictor") is not None:
        pairs.append(("mask_head", _last_conv_out(rh.mask_head), f"{MASK}.conv5_mask", "in_channels"))
    if _predictor(model, "keypoint_predictor") is not None:
        pairs.append(
            ("keypoint_head", _last_conv_out(rh.keypoint_head), f"{KEYPOINT}.kps_score_lowres", "in_channels")
        )
    problems = []
    for head, width, layer_path, attr in pairs:
        layer = model.get_submodule(layer_path)
        if width is None or getattr(layer, attr) == width:
            continue
        summary = f"`{layer_path}` takes {getattr(layer, attr)} features but `roi_heads.{head}` emits {width}"
        facts = [
            f"`roi_heads.{head}` output width = {width}",
            f"`{layer_path}.{attr}` = {getattr(layer, attr)}",
        ]
        fix = f"rebuild `model.{layer_path.rpartition('.')[0]}` with {width} input features/channels"
        problems.append(common.problem("HF209", layer_path, attr, summary, facts, fix))
    return problems


def _lint_rpn(model: nn.Module) -> list[Problem]:
    """HF203 for the RPN: its head predicts one objectness score and 4 deltas per generated anchor."""
    head, generator = model.rpn.head, model.rpn.anchor_generator
    counts = common.anchors_per_location(generator)
    if not counts or not hasattr(head, "cls_logits"):
        return []
    scores, deltas = head.cls_logits.out_channels, head.bbox_pred.out_channels
    if len(set(counts)) == 1 and scores == counts[0] and deltas == 4 * counts[0]:
        return []
    made = counts[0] if len(set(counts)) == 1 else max(counts)
    facts = [
        f"`rpn.anchor_generator.num_anchors_per_location()` = {counts}",
        f"`rpn.head.cls_logits` emits {scores} channels, `rpn.head.bbox_pred` {deltas} (4 per anchor)",
        "the RPN head is shared by every level, so every level needs the same number of anchors",
    ]
    if len(set(counts)) > 1:
        summary = (
            f"`rpn.anchor_generator` makes {counts} anchors per level but the shared RPN head needs one count"
        )
        fix = "give `model.rpn.anchor_generator` the same number of sizes x aspect ratios on every level"
        return [common.problem("HF203", "rpn.anchor_generator", "aspect_ratios", summary, facts, fix)]
    summary = f"`rpn.head` predicts {scores} anchors per location but `rpn.anchor_generator` makes {made}"
    depth = len(head.conv) if isinstance(head.conv, nn.Sequential) else 1
    depth_arg = f", conv_depth={depth}" if depth != 1 else ""
    fix = f"model.rpn.head = torchvision.models.detection.rpn.RPNHead({head.cls_logits.in_channels}, {made}{depth_arg})"
    return [common.problem("HF203", "rpn.head", "cls_logits", summary, facts, fix)]


def _last_conv_out(module: nn.Module | None) -> int | None:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)] if module is not None else []
    return convs[-1].out_channels if convs else None


# -- adapt -----------------------------------------------------------------------------------------------


def _background_keep(keep: Any, num_classes: int, source_outputs: int) -> list[int] | None:
    """Source rows for [background, *keep]: the background row always comes from source row 0."""
    rows = check_keep(keep, num_classes, source_outputs)
    if rows is None:
        return None
    if 0 in rows:
        raise UsageError(
            "`keep` lists 0, which is the background row in an R-CNN head: user classes start at 1 in "
            "the source head's numbering (e.g. 1 is `person` in COCO); the background row is kept anyway"
        )
    return [0, *rows]


def _adapt_keypoints(model: nn.Module, num_keypoints: int, replaced: list[str], notes: list[str]) -> dict:
    kp = _predictor(model, "keypoint_predictor")
    if kp is None:
        raise UsageError(
            "`num_keypoints` applies only to Keypoint R-CNN; this model has no keypoint predictor"
        )
    if not isinstance(num_keypoints, int) or isinstance(num_keypoints, bool) or num_keypoints < 1:
        raise UsageError(f"`num_keypoints` must be a whole number >= 1, got {num_keypoints!r}")
    kp.kps_score_lowres = new_conv_like(
        kp.kps_score_lowres, num_keypoints, init=_kaiming_fan_out(zero_bias=True)
    )
    kp.out_channels = num_keypoints
    replaced.append(f"{KEYPOINT}.kps_score_lowres")
    notes.append(f"the keypoint predictor now predicts {num_keypoints} keypoints per box")
    return {f"{KEYPOINT}.out_channels": num_keypoints}


def _kaiming_fan_out(zero_bias: bool):
    """Mask/keypoint predictor init: kaiming_normal(fan_out, relu); keypoints also zero the bias."""

    def init(layer: nn.Module) -> None:
        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        if zero_bias and layer.bias is not None:
            nn.init.zeros_(layer.bias)

    return init
