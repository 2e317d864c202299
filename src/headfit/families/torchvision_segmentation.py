"""torchvision semantic segmentation: FCN, DeepLabV3 (ResNet and MobileNetV3) and LRASPP.

FCN and DeepLabV3 end in ``classifier[4]`` (a 1x1 conv) and, with ``aux_loss``, ``aux_classifier[4]``;
``forward`` computes ``aux`` whenever ``aux_classifier`` is set, in eval too. LRASPP has no aux head but
two class convs, ``classifier.low_classifier`` and ``classifier.high_classifier``, whose outputs are
added, so both must agree. Class counts include the background (VOC class 0): 21 for the weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.segmentation._utils import _SimpleSegmentationModel
from torchvision.models.segmentation.lraspp import LRASPP

from headfit.diagnosis import Problem
from headfit.families import _util as u
from headfit.families._classifier_chain import (
    AUX_MISMATCH,
    classifier_chain,
    replace_head,
    width_problems,
)
from headfit.families.base import AdaptSummary, Family, HeadInfo, SizeRule, register_family
from headfit.inputs import InputSpec
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import in_width, is_class_layer, layer_code, out_width
from headfit.smoke import SmokeBatch

BRANCH_MISMATCH = "HF223"
AUX_LOSS_WEIGHT = 0.5  # torchvision's references/segmentation/train.py


@register_family
class TorchvisionSegmentation(Family):
    name = "torchvision-segmentation"
    priority = 20
    examples = ("torchvision:lraspp_mobilenet_v3_large", "torchvision:fcn_resnet50")
    aux_loss_weight = AUX_LOSS_WEIGHT

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return isinstance(model, (_SimpleSegmentationModel, LRASPP))

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        return [HeadInfo(path, kind, _outputs(model, path)) for path, kind in head_paths(model)]

    def num_classes(self, model: nn.Module) -> int | None:
        heads = head_paths(model)
        return _outputs(model, heads[0][0]) if heads else None

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        return lint_segmentation(model)

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        return [InputSpec.batch(2, 3, 520, 520)]  # the weights' evaluation size

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        return SizeRule(
            notes=[
                "the logits are upsampled back to the input size, so any size that survives the backbone works"
            ]
        )

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        keep = self.checked_options(options).get("keep")
        num_classes = u.check_num_classes(num_classes)
        heads = [path for path, _ in head_paths(model)]
        rows = u.check_keep(keep, num_classes, _outputs(model, heads[0]))
        for path in heads:  # torchvision leaves these convs at PyTorch's default init
            replace_head(model, path, num_classes, None, rows)
        return AdaptSummary(
            family=self.name,
            num_classes=num_classes,
            head_outputs=self.outputs_for(num_classes),
            replaced=heads,
            notes=[
                f"{type(model).__name__}: {', '.join(f'`{module_name(p)}`' for p in heads)} now emit {num_classes} classes",
                "segmentation counts the background as a class (index 0 by the VOC convention): "
                "include it in `num_classes`, and label background pixels 0",
            ],
            kept_rows=rows or [],
        )

    # -- smoke step (verification after adapt) ---------------------------------------------------------

    def smoke_batch(self, model: nn.Module, num_classes: int) -> SmokeBatch:
        device = next(model.parameters()).device
        images = torch.randn(2, 3, 64, 64, device=device)
        return SmokeBatch(args=(images,), targets=torch.randint(num_classes, (2, 64, 64), device=device))

    def smoke_loss(self, model: nn.Module, output: Any, batch: SmokeBatch) -> Any:
        """Per-pixel cross-entropy on ``out``, plus ``aux_loss_weight`` x that of ``aux`` as torchvision
        trains it."""
        loss = F.cross_entropy(output["out"], batch.targets)
        if "aux" in output:
            loss = loss + self.aux_loss_weight * F.cross_entropy(output["aux"], batch.targets)
        return loss

    def output_classes(self, model: nn.Module, output: Any) -> int | None:
        return int(output["out"].shape[1])

    # -- training --------------------------------------------------------------------------------------

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        return [f"`{module_name(path)}` emits {_outputs(model, path)} classes" for path, _ in head_paths(model)]


# -- heads -----------------------------------------------------------------------------------------------


def head_paths(model: nn.Module) -> list[tuple[str, str]]:
    """(path, kind) of every class conv, main head first."""
    if isinstance(model, LRASPP):
        return [
            ("classifier.high_classifier", "classifier"),
            ("classifier.low_classifier", "classifier"),
        ]
    found = [
        (_last_conv(model, "classifier"), "classifier"),
        (_last_conv(model, "aux_classifier"), "aux_classifier"),
    ]
    return [(path, kind) for path, kind in found if path is not None]


def _last_conv(model: nn.Module, container: str) -> str | None:
    if not u.has_module(model, container):
        return None
    convs = [p for p, m in classifier_chain(model, container) if is_class_layer(m)]
    return convs[-1] if convs else None


def _outputs(model: nn.Module, path: str) -> int | None:
    return out_width(u.get_module(model, path)) if u.has_module(model, path) else None


def _backbone_width(model: nn.Module, output: str) -> tuple[str, int | None]:
    """(path, width) of the backbone layer that ``IntermediateLayerGetter`` returns as ``output``."""
    backbone = model.backbone
    for layer, name in getattr(backbone, "return_layers", {}).items():
        if name == output and u.has_module(backbone, layer):
            return f"backbone.{layer}", u.last_width(u.get_module(backbone, layer))
    return "backbone", None


# -- lint ------------------------------------------------------------------------------------------------


def lint_segmentation(model: nn.Module) -> list[Problem]:
    """Every head invariant of a torchvision segmentation model that does not hold."""
    if isinstance(model, LRASPP):
        return _lraspp_problems(model)
    problems: list[Problem] = []
    for container, output in (("classifier", "out"), ("aux_classifier", "aux")):
        if u.has_module(model, container):
            source, width = _backbone_width(model, output)
            problems += width_problems(source, width, classifier_chain(model, container))
    heads = head_paths(model)
    if len(heads) == 2:
        problems += _count_problems(model, heads[0][0], heads[1][0], AUX_MISMATCH, "auxiliary head")
    return problems


def _lraspp_problems(model: nn.Module) -> list[Problem]:
    head = model.classifier
    low_source, low_width = _backbone_width(model, "low")
    problems = width_problems(low_source, low_width, [("classifier.low_classifier", head.low_classifier)])
    high_source, high_width = _backbone_width(model, "high")
    problems += width_problems(high_source, high_width, classifier_chain(model, "classifier.cbr"))
    high_chain = [("classifier.high_classifier", head.high_classifier)]
    problems += width_problems("classifier.cbr", u.last_width(head.cbr), high_chain)
    problems += _count_problems(
        model, "classifier.high_classifier", "classifier.low_classifier", BRANCH_MISMATCH, "low-level branch"
    )
    return problems


def _count_problems(model: nn.Module, main: str, other: str, code: str, what: str) -> list[Problem]:
    """``other`` must emit as many classes as ``main`` (their outputs are added, or trained together)."""
    classes, other_classes = _outputs(model, main), _outputs(model, other)
    if classes == other_classes:
        return []
    layer = u.get_module(model, other)
    return [
        Problem(
            code=code,
            module=other,
            attribute="out_channels",
            summary=f"{what} `{module_name(other)}` emits {other_classes} classes but `{module_name(main)}` emits {classes}",
            facts=[
                f"`{module_name(other)}` has {other_classes} output channels",
                f"`{module_name(main)}` has {classes} output channels",
            ],
            fix=f"{module_expr('model', other)} = {layer_code(layer, in_width(layer), classes)}",
        )
    ]
