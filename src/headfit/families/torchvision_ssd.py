"""torchvision SSD300 and SSDlite: one scoring conv per feature level, ``num_columns`` columns per anchor.

``SSDScoringHead.forward`` reshapes level i with ``view(N, -1, self.num_columns, H, W)``, so the last conv
of level i must emit ``num_anchors[i] * num_columns`` channels (``DefaultBoxGenerator`` gives
``num_anchors``). Softmax over K+1 columns, background at index 0. SSDlite's level is
``Sequential(depthwise block, 1x1 conv)``; only the 1x1 conv depends on the classes.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.detection.ssd import SSD as SSDModel

from headfit.diagnosis import Problem
from headfit.errors import UsageError
from headfit.families import _detection_common as common
from headfit.families._facts import SSD
from headfit.families._util import (
    check_keep,
    check_num_classes,
    copy_rows,
    new_conv_like,
    normal_init,
    set_module,
)
from headfit.families.base import AdaptSummary, HeadInfo, Recipe, register_family
from headfit.families.torchvision_detection import DetectionFamily

CLS = SSD.head
REG = SSD.regression


@register_family
class SSDFamily(DetectionFamily):
    """SSD300 (VGG16) and SSDlite320 (MobileNetV3): softmax over K+1 columns, background at index 0."""

    name = SSD.family
    priority = 10
    counts_background = SSD.background
    class_head = SSD.head
    selects_by_value = True  # its anchors mix device-less tensors with meta ones before the heads
    smoke_images = 2  # SSDlite's last extra block is 1x1: BatchNorm in train mode needs two images
    examples = ("torchvision:ssdlite320_mobilenet_v3_large",)

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return isinstance(model, SSDModel)

    def num_classes(self, model: nn.Module) -> int | None:
        return int(model.head.classification_head.num_columns) - 1

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        cls = model.head.classification_head
        attrs = {f"{CLS}.num_columns": cls.num_columns}
        return [HeadInfo(p, "box_classifier", cls.num_columns, attrs) for p, _ in _scoring_convs(cls, CLS)]

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        anchors = common.anchors_per_location(model.anchor_generator) or []
        problems = _lint_levels(model, anchors)
        if not problems:
            problems += _lint_columns(model.head.classification_head, CLS, anchors, "HF211")
            problems += _lint_columns(model.head.regression_head, REG, anchors, "HF212")
        return problems

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """Rebuild only the last conv of each level for K+1 columns; the SSDlite depthwise blocks stay."""
        num_classes = check_num_classes(num_classes)
        keep = self.checked_options(options).get("keep")
        cls = model.head.classification_head
        source_columns, outputs = int(cls.num_columns), self.outputs_for(num_classes)
        rows = check_keep(keep, num_classes, source_columns)
        if rows is not None and 0 in rows:
            raise UsageError("`keep` lists 0, which is SSD's background column: user classes start at 1")
        init = normal_init(0.03) if _is_lite(model) else _xavier
        replaced = []
        for path, old in _scoring_convs(cls, CLS):
            anchors = old.out_channels // source_columns
            new = new_conv_like(old, anchors * outputs, init=init)
            if rows is not None:
                copy_rows(new, old, common.per_anchor_rows([0, *rows], source_columns, anchors))
            set_module(model, path, new)
            replaced.append(path)
        cls.num_columns = outputs
        arch = "SSDlite" if _is_lite(model) else "SSD"
        return AdaptSummary(
            family=self.name,
            num_classes=num_classes,
            head_outputs=outputs,
            replaced=replaced,
            attributes={f"{CLS}.num_columns": outputs},
            notes=[
                f"{arch} counts background: the classification head now has {outputs} columns per anchor "
                f"for your {num_classes} classes (labels 1..{num_classes}, 0 is the background)",
            ],
            kept_rows=[0, *rows] if rows is not None else [],
        )

    # -- training --------------------------------------------------------------------------------------

    def training_recipe(self, model: nn.Module) -> Recipe | None:
        if _is_lite(model):
            return Recipe(
                lr=0.15,
                batch=192,
                source="torchvision's SSDlite reference recipe, 8 GPUs x 24 images",
            )
        return Recipe(
            lr=0.002,
            batch=32,
            source="torchvision's SSD300 reference recipe, 8 GPUs x 4 images",
        )

    def jitter_transforms(self, model: nn.Module, scales: tuple[float, float]) -> list[Any]:
        """SSD resizes every image to one fixed size, so the scale is jittered in the data: half the
        images are zoomed out onto a canvas up to 1/low times larger (SSD's own augmentation)."""
        from torchvision.transforms import v2

        mean = [round(255 * m) for m in model.transform.image_mean]
        return [v2.RandomZoomOut(fill=mean, side_range=(1.0, 1.0 / scales[0]), p=0.5)]

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        cls = model.head.classification_head
        channels = [conv.out_channels for _, conv in _scoring_convs(cls, CLS)]
        anchors = common.anchors_per_location(model.anchor_generator)
        return [
            f"`{CLS}` level convs emit {channels} channels; `num_columns` says {cls.num_columns}; "
            f"`anchor_generator` makes {anchors} anchors per level"
        ]


# -- heads -----------------------------------------------------------------------------------------------


def _scoring_convs(head: nn.Module, path: str) -> list[tuple[str, nn.Conv2d]]:
    """(path, conv) of the class-dependent last conv of each level (SSDlite: the 1x1 after the block)."""
    found = []
    for i, level in enumerate(head.module_list):
        if isinstance(level, nn.Conv2d):
            found.append((f"{path}.module_list.{i}", level))
        else:
            j, conv = [(j, m) for j, m in enumerate(level) if isinstance(m, nn.Conv2d)][-1]
            found.append((f"{path}.module_list.{i}.{j}", conv))
    return found


def _is_lite(model: nn.Module) -> bool:
    return not isinstance(model.head.classification_head.module_list[0], nn.Conv2d)


# -- lint ------------------------------------------------------------------------------------------------


def _lint_levels(model: nn.Module, anchors: list[int]) -> list[Problem]:
    """HF213: heads, anchor generator and backbone agree on the number of feature levels."""
    counts = {
        f"`{CLS}.module_list`": len(model.head.classification_head.module_list),
        f"`{REG}.module_list`": len(model.head.regression_head.module_list),
        "`anchor_generator.aspect_ratios`": len(model.anchor_generator.aspect_ratios),
    }
    maps = common.feature_map_count(model.backbone)
    if maps is not None:
        counts["the backbone's feature maps"] = maps
    if len(set(counts.values())) == 1:
        return []
    facts = [f"{name}: {n} levels" for name, n in counts.items()]
    target = maps if maps is not None else len(model.head.classification_head.module_list)
    odd = [name for name, n in counts.items() if n != target]
    module = "anchor_generator" if odd == ["`anchor_generator.aspect_ratios`"] else CLS
    summary = f"the SSD levels disagree: {', '.join(odd)} against {target} feature maps"
    fix = f"give {', '.join(odd)} {target} levels, one per feature map of `model.backbone`"
    attribute = "aspect_ratios" if module == "anchor_generator" else "module_list"
    return [common.problem("HF213", module, attribute, summary, facts, fix)]


def _lint_columns(head: nn.Module, path: str, anchors: list[int], code: str) -> list[Problem]:
    """HF211/HF212: level i's conv emits ``anchors[i] * num_columns`` channels."""
    columns = int(head.num_columns)
    problems = []
    for i, ((conv_path, conv), a) in enumerate(zip(_scoring_convs(head, path), anchors, strict=False)):
        if conv.out_channels == a * columns:
            continue
        facts = [
            f"`{conv_path}.out_channels` = {conv.out_channels}",
            f"level {i}: {a} anchors x `num_columns` {columns} = {a * columns}",
        ]
        if (
            code == "HF211"
            and conv.out_channels % a == 0
            and all(
                c.out_channels == n * (conv.out_channels // a)
                for (_, c), n in zip(_scoring_convs(head, path), anchors, strict=False)
            )
        ):
            fitting = conv.out_channels // a
            summary = f"`{path}` convs emit {fitting} columns per anchor but `num_columns` is {columns}"
            return [
                common.problem(
                    code, path, "num_columns", summary, facts, f"model.{path}.num_columns = {fitting}"
                )
            ]
        summary = f"`{conv_path}` emits {conv.out_channels} channels but level {i} needs {a} x {columns} = {a * columns}"
        fix = (
            f"model.{conv_path} = torch.nn.Conv2d({conv.in_channels}, {a * columns}, "
            f"kernel_size={conv.kernel_size[0]}, padding={conv.padding[0]})"
        )
        problems.append(common.problem(code, conv_path, "out_channels", summary, facts, fix))
    return problems


# -- adapt -----------------------------------------------------------------------------------------------


def _xavier(layer: nn.Module) -> None:
    """SSD300's ``_xavier_init``: xavier_uniform weights, bias 0."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
