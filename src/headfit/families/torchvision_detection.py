"""torchvision detection: the ``DetectionFamily`` base of every torchvision detector, and RetinaNet/FCOS.

R-CNN and SSD live in ``torchvision_rcnn.py`` / ``torchvision_ssd.py``; the head paths and class-count
facts all three share with ``explain/`` are in ``_facts.py``, target checks in ``_detection_targets.py``.

RetinaNet and FCOS share one head design: a conv tower and a ``cls_logits`` conv whose channels are laid
out ``(N, A * K, H, W)``, reshaped with ``view(N, -1, self.num_classes, H, W)``. The attribute
``head.classification_head.num_classes`` must follow the conv, which is the seed's classic mistake.
They use sigmoid focal loss and count no background: K classes means K columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torchvision.models.detection import FCOS, RetinaNet

from headfit.diagnosis import Cause, Diagnosis, Problem
from headfit.families import _detection_common as common
from headfit.families import _detection_targets as targets_check
from headfit.families._facts import DENSE, PRETRAINED_CLASS_COUNTS
from headfit.families._util import check_keep, check_num_classes, copy_rows, new_conv_like, set_module
from headfit.families.base import (
    AdaptSummary,
    Evidence,
    Family,
    HeadInfo,
    ImageSize,
    Recipe,
    SizeRule,
    register_family,
)
from headfit.smoke import SmokeBatch

if TYPE_CHECKING:
    from headfit.inputs import InputSpec

SMOKE_SIZE = 128  # the smoke batch's image size, kept by the transform during the smoke step
CLS = DENSE.head
REG = DENSE.regression


class DetectionFamily(Family):
    """What all torchvision detectors share: inputs, sizes, the smoke batch, the loss, target checks."""

    smoke_images: ClassVar[int] = 1
    class_head: ClassVar[str] = ""  # the class head's module path (``_facts.py``), named in label causes
    lint_confidence = (0.95, 0.85)
    takes_targets = True

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        return common.default_inputs()

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        return common.size_rule(model)

    # -- smoke step (verification after adapt) ---------------------------------------------------------

    @contextlib.contextmanager
    def smoke_context(self, model: nn.Module) -> Iterator[None]:
        """Resize to 128 px instead of 800 for the smoke step: the same code paths, 40x less work."""
        transform = getattr(model, "transform", None)
        sizes = ("min_size", "max_size", "fixed_size")
        saved = {name: getattr(transform, name) for name in sizes if hasattr(transform, name)}
        if getattr(transform, "fixed_size", None) is None and "min_size" in saved:
            transform.min_size, transform.max_size = (SMOKE_SIZE,), SMOKE_SIZE
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(transform, name, value)

    def smoke_batch(self, model: nn.Module, num_classes: int) -> SmokeBatch:
        """``smoke_images`` 3x128x128 images, each with one box of the first class (label 1 where 0 is
        the background)."""
        param = next(model.parameters())
        label = 1 if self.counts_background else min(1, num_classes - 1)
        images, targets = [], []
        for _ in range(self.smoke_images):
            image = torch.rand(3, SMOKE_SIZE, SMOKE_SIZE, device=param.device, dtype=param.dtype)
            target = {
                "boxes": torch.tensor([[16.0, 24.0, 96.0, 112.0]], device=param.device, dtype=param.dtype),
                "labels": torch.tensor([label], device=param.device),
            }
            target.update(self.extra_targets(model, target, image))
            images.append(image)
            targets.append(target)
        return SmokeBatch(args=(images, targets), targets=targets)

    def extra_targets(self, model: nn.Module, target: dict, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-family additions to the smoke target (masks, keypoints)."""
        return {}

    def smoke_loss(self, model: nn.Module, output: Any, batch: SmokeBatch) -> Any:
        return common.loss_sum(output)

    def output_classes(self, model: nn.Module, output: Any) -> int | None:
        """The head's columns; an eval output with a higher label than the head allows says more."""
        top = common.max_label(output)
        outputs = self.head_outputs(model)
        return outputs if top is None else max(outputs, top + 1)

    # -- training --------------------------------------------------------------------------------------
    # torchvision detectors take (images, targets) with targets {"boxes": xyxy pixels, "labels"} and
    # return a dict of losses in train mode; `transform` (GeneralizedRCNNTransform) resizes and
    # normalises every image, and in train mode picks one of `min_size` per image.

    task = "detection"

    def image_size(self, model: nn.Module) -> ImageSize | None:
        t = model.transform
        fixed = tuple(t.fixed_size) if t.fixed_size is not None else None
        return ImageSize(min_size=tuple(int(s) for s in t.min_size), max_size=int(t.max_size), fixed=fixed)

    def set_image_size(self, model: nn.Module, size: ImageSize) -> None:
        t = model.transform
        if t.fixed_size is not None:  # SSD: one fixed size; the square of the longer side asked for
            side = size.fixed or (size.max_size, size.max_size)
            t.fixed_size = tuple(side)
            t.min_size, t.max_size = (min(side),), max(side)
            return
        t.min_size, t.max_size = tuple(size.min_size), int(size.max_size)

    def jittered_size(
        self, model: nn.Module, size: ImageSize, scales: tuple[float, float]
    ) -> ImageSize | None:
        """Every multiple of 32 between ``scales`` times the shorter side, the nominal size last (so
        eval mode, which takes ``min_size[-1]``, stays at it), and the cap raised by the top scale."""
        if model.transform.fixed_size is not None:
            return None
        base = size.min_size[-1]
        low, high = round(base * scales[0]), round(base * scales[1])
        sizes = sorted({s for s in range(32 * -(-low // 32), high + 1, 32)} - {base})
        return ImageSize(min_size=(*sizes, base), max_size=round(size.max_size * scales[1]))

    def detections_per_image(self, model: nn.Module) -> int | None:
        return int(model.detections_per_img)

    def set_detections_per_image(self, model: nn.Module, count: int) -> None:
        model.detections_per_img = int(count)

    def freezable(self, model: nn.Module) -> dict[str, str]:
        """``backbone``: the feature extractor's trunk (``backbone.body`` behind an FPN); the FPN and
        the heads keep training."""
        backbone = model.backbone
        for trunk in ("body", "features"):
            if isinstance(getattr(backbone, trunk, None), nn.Module):
                return {"backbone": f"backbone.{trunk}"}
        return {"backbone": "backbone"}

    # -- live evidence ---------------------------------------------------------------------------------

    def explain_failure(self, model: nn.Module, module_path: str, diagnosis: Diagnosis) -> Evidence:
        """Live facts and lint causes (the base's), and a label the message names that the head lacks."""
        evidence = super().explain_failure(model, module_path, diagnosis)
        label = targets_check.message_label_cause(self, model, diagnosis.message)
        evidence.causes.extend([label] if label is not None else [])
        return evidence

    def check_targets(self, model: nn.Module, targets: Any, *, name: str = "targets") -> Evidence:
        """Labels out of range, boxes that are not ``[N, 4]`` x1, y1, x2, y2, keypoints of the wrong count:
        one cause per finding for the batch (see ``_detection_targets.py``)."""
        return targets_check.target_evidence(self, model, targets, name)

    def check_images(self, model: nn.Module, images: Any, *, name: str = "images") -> Evidence:
        """torchvision detectors take a list of [C, H, W] images: one bare image tensor is iterated along
        its first axis (an [H, W, 3] image becomes H 'images' of [W, 3])."""
        if not isinstance(images, torch.Tensor) or images.dim() != 3:
            return Evidence()
        shape = list(images.shape)
        channels_last = shape[-1] in (1, 3) and shape[0] not in (1, 3)
        image = f"{name}.permute(2, 0, 1)" if channels_last else name
        fact = (
            f"`{name}` is one tensor {shape}, not a list of images: {type(model).__name__} iterates over its "
            f"first axis, so each 'image' is a {shape[1:]} slice"
            + (" (and its channels are last: [H, W, C])" if channels_last else "")
        )
        cause = Cause(
            f"`{name}` is a single {'channels-last ' if channels_last else ''}image tensor; "
            f"{type(model).__name__} takes a list of [C, H, W] images",
            0.95,
            None,
            "images",
            f"{name} = [{image}]  # a list of [C, H, W] images, as torchvision detectors take them",
        )
        return Evidence([fact], [cause])


@register_family
class DenseDetectionFamily(DetectionFamily):
    """torchvision RetinaNet and FCOS: one shared head over the FPN levels, sigmoid focal loss."""

    name = DENSE.family
    priority = 10
    counts_background = DENSE.background
    class_head = DENSE.head
    examples = ("torchvision:fcos_resnet50_fpn", "torchvision:retinanet_resnet50_fpn")

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return isinstance(model, (RetinaNet, FCOS))

    def num_classes(self, model: nn.Module) -> int | None:
        return int(model.head.classification_head.num_classes)

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        cls = model.head.classification_head
        attrs = {f"{CLS}.num_classes": cls.num_classes, f"{CLS}.num_anchors": cls.num_anchors}
        heads = [HeadInfo(f"{CLS}.{DENSE.logits}", "box_classifier", int(cls.num_classes), attrs)]
        for name in ("bbox_reg", "bbox_ctrness"):
            layer = getattr(model.head.regression_head, name, None)
            if layer is not None:
                heads.append(HeadInfo(f"{REG}.{name}", "box_regressor", layer.out_channels))
        return heads

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        anchors, problems = _anchor_count(model)
        problems += _lint_classifier(model.head.classification_head, anchors)
        problems += _lint_regression(model.head.regression_head, anchors)
        problems += common.lint_anchor_generator(model.anchor_generator, "anchor_generator", model.backbone)
        return problems

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """Replace ``cls_logits`` only (the conv tower stays), with the prior-probability init."""
        num_classes = check_num_classes(num_classes)
        keep = self.checked_options(options).get("keep")
        cls = model.head.classification_head
        old = cls.cls_logits
        anchors = int(cls.num_anchors)
        source_columns = old.out_channels // anchors
        rows = check_keep(keep, num_classes, source_columns)
        new = new_conv_like(old, anchors * num_classes, init=common.prior_init())
        if rows is not None:
            copy_rows(new, old, common.per_anchor_rows(rows, source_columns, anchors))
        set_module(model, DENSE.logits_path, new)
        cls.num_classes = num_classes
        arch = type(model).__name__
        return AdaptSummary(
            family=self.name,
            num_classes=num_classes,
            head_outputs=self.outputs_for(num_classes),
            replaced=[DENSE.logits_path],
            attributes={f"{CLS}.num_classes": num_classes},
            notes=[
                f"{arch} counts no background (sigmoid focal loss): `{DENSE.logits_path}` now has "
                f"{anchors} x {num_classes} = {anchors * num_classes} channels for your {num_classes} "
                f"classes, labels {self.valid_labels(num_classes)}",
                _new_logits_note(rows),
            ],
            kept_rows=list(rows or []),
        )

    # -- training --------------------------------------------------------------------------------------

    def training_recipe(self, model: nn.Module) -> Recipe | None:
        arch = type(model).__name__
        return Recipe(
            lr=0.01,
            batch=16,
            source=f"torchvision's {arch} reference recipe, 8 GPUs x 2 images",
        )

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        cls = model.head.classification_head
        facts = [
            f"`{DENSE.logits_path}` emits {cls.cls_logits.out_channels} channels; `num_classes` says "
            f"{cls.num_classes}; `num_anchors` is {cls.num_anchors}"
        ]
        made = common.anchors_per_location(model.anchor_generator)
        if made:
            facts.append(
                f"`anchor_generator` makes {made[0]} anchor(s) per location on each of {len(made)} levels"
            )
        return facts

    def explain_failure(self, model: nn.Module, module_path: str, diagnosis: Diagnosis) -> Evidence:
        """When ``cls_logits`` and ``num_classes`` disagree, both directions: lint says set ``num_classes``
        to the conv's count; the other reading is that ``num_classes`` is what the user meant."""
        evidence = super().explain_failure(model, module_path, diagnosis)
        rehead = _rehead_for_num_classes(model)
        evidence.causes.extend([rehead] if rehead is not None else [])
        return evidence


# -- lint ------------------------------------------------------------------------------------------------


def _anchor_count(model: nn.Module) -> tuple[int, list[Problem]]:
    """The anchors per location the head must serve, and HF203 when head and generator disagree.

    ``num_anchors`` is only read at build time; what counts at run time is what the generator
    makes. But when the regression conv agrees with ``num_anchors``, the generator is the outlier.
    """
    cls = model.head.classification_head
    made = common.uniform_anchors(model.anchor_generator)
    if made is None or made == cls.num_anchors:
        return int(cls.num_anchors), []
    reg_anchors = model.head.regression_head.bbox_reg.out_channels / 4
    facts = [
        f"`anchor_generator.num_anchors_per_location()` = {made} per level",
        f"`{CLS}.num_anchors` = {cls.num_anchors}",
        f"`{REG}.bbox_reg` emits {model.head.regression_head.bbox_reg.out_channels} channels "
        f"= 4 * {reg_anchors:g} anchors",
    ]
    if reg_anchors == cls.num_anchors:
        summary = f"`anchor_generator` makes {made} anchors per location but the head is built for {cls.num_anchors}"
        fix = (
            f"give `model.anchor_generator` sizes and aspect ratios whose product is {cls.num_anchors} "
            f"per level, or rebuild the head for {made} anchors: `headfit.adapt(model, {cls.num_classes})` "
            f"after setting `model.{CLS}.num_anchors = {made}`"
        )
        return int(cls.num_anchors), [
            common.problem("HF203", "anchor_generator", "num_anchors_per_location", summary, facts, fix)
        ]
    summary = f"`{CLS}.num_anchors` is {cls.num_anchors} but `anchor_generator` makes {made} per location"
    fix = f"model.{CLS}.num_anchors = {made}"
    return made, [common.problem("HF203", CLS, "num_anchors", summary, facts, fix)]


def _lint_classifier(cls: nn.Module, anchors: int) -> list[Problem]:
    """HF201: ``cls_logits`` channels == anchors * ``num_classes`` (the seed's mistake)."""
    out, k = cls.cls_logits.out_channels, int(cls.num_classes)
    if out == anchors * k:
        return []
    facts = [
        f"`{DENSE.logits_path}.out_channels` = {out}",
        f"`num_anchors` * `num_classes` = {anchors} * {k} = {anchors * k}",
        f"forward does `cls_logits.view(N, -1, {k}, H, W)`, which needs the channels to be "
        f"{anchors} anchor(s) x {k} classes",
    ]
    if out % anchors == 0:
        fitting = out // anchors
        summary = (
            f"`{DENSE.logits_path}` emits {out} channels ({anchors} anchor(s) x {fitting} classes) but "
            f"`num_classes` is {k}"
        )
        fix = f"model.{CLS}.num_classes = {fitting}"
        return [common.problem("HF201", CLS, "num_classes", summary, facts, fix)]
    conv = cls.cls_logits
    summary = f"`{DENSE.logits_path}` emits {out} channels, which is not a multiple of its {anchors} anchors"
    fix = (
        f"model.{DENSE.logits_path} = torch.nn.Conv2d({conv.in_channels}, {anchors * k}, kernel_size=3, "
        f"stride=1, padding=1)  # or headfit.adapt(model, {k})"
    )
    return [common.problem("HF201", DENSE.logits_path, "out_channels", summary, facts, fix)]


def _lint_regression(reg: nn.Module, anchors: int) -> list[Problem]:
    """HF202: ``bbox_reg`` has 4 channels per anchor, FCOS ``bbox_ctrness`` one."""
    problems = []
    for name, per_anchor in (("bbox_reg", 4), ("bbox_ctrness", 1)):
        conv = getattr(reg, name, None)
        if conv is None or conv.out_channels == per_anchor * anchors:
            continue
        path = f"{REG}.{name}"
        summary = (
            f"`{path}` emits {conv.out_channels} channels but {anchors} anchor(s) need {per_anchor * anchors}"
        )
        facts = [
            f"`{path}.out_channels` = {conv.out_channels}",
            f"{per_anchor} value(s) per anchor x {anchors} anchor(s) per location = {per_anchor * anchors}",
        ]
        fix = (
            f"model.{path} = torch.nn.Conv2d({conv.in_channels}, {per_anchor * anchors}, kernel_size=3, "
            "stride=1, padding=1)"
        )
        problems.append(common.problem("HF202", path, "out_channels", summary, facts, fix))
    return problems


# -- live evidence ---------------------------------------------------------------------------------------


def _rehead_for_num_classes(model: nn.Module) -> Cause | None:
    """``num_classes`` says K but ``cls_logits`` emits A x K' channels: keep K and re-head the conv.

    More likely when the conv still has a pretrained count (91: the user set ``num_classes`` for their
    data and forgot the conv) than when ``num_classes`` does (the user replaced the conv).
    """
    cls = model.head.classification_head
    anchors, _ = _anchor_count(model)
    out, k = cls.cls_logits.out_channels, int(cls.num_classes)
    if out == anchors * k or out % anchors:
        return None
    fitting = out // anchors
    confidence = 0.5 if fitting in PRETRAINED_CLASS_COUNTS and k not in PRETRAINED_CLASS_COUNTS else 0.3
    return Cause(
        f"or the other way round: keep `num_classes` = {k} and re-head `cls_logits` (now {fitting} "
        f"classes) for {k} ({anchors} x {k} = {anchors * k} channels)",
        confidence,
        DENSE.logits_path,
        "out_channels",
        f"headfit.adapt(model, {k})",
    )


def _new_logits_note(kept: list[int] | None) -> str:
    """Where the new ``cls_logits`` starts: with ``keep`` every class's rows are copied (one source
    class per new class), so torchvision's N(0, 0.01) init is not what the user gets."""
    if kept:
        return (
            f"the new `cls_logits` starts from the pretrained rows of source classes {', '.join(map(str, kept))} "
            "(one per new class, its bias included); the conv towers keep their weights"
        )
    return (
        "the new `cls_logits` starts from N(0, 0.01) with the prior bias -log(99) as torchvision "
        "initialises it; the conv towers keep their weights"
    )
