"""What every torchvision detector shares: the transform, the anchor generator, the backbone's feature maps.

Used by the three detection families (R-CNN, RetinaNet/FCOS, SSD); see ``torchvision_detection.py``.
Everything here reads the model and never runs it on real data: the backbone is probed on the
``meta`` device with stand-in parameters when its structure does not say how many maps it returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.ssd import SSDFeatureExtractorVGG
from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet
from torchvision.ops.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from headfit.diagnosis import Problem
from headfit.families.base import SizeRule
from headfit.inputs import InputSpec
from headfit.modulepath import module_name

PROBE_SIZE = 512  # H and W of the meta probe: large enough for every torchvision backbone's last map


def problem(
    code: str, module: str, attribute: str | None, summary: str, facts: list[str], fix: str | None
) -> Problem:
    return Problem(code=code, module=module, attribute=attribute, summary=summary, facts=facts, fix=fix)


def feature_map_count(backbone: nn.Module) -> int | None:
    """How many feature maps ``backbone`` returns: read from an FPN's blocks, else probed on meta."""
    fpn = getattr(backbone, "fpn", None)
    if isinstance(fpn, FeaturePyramidNetwork):
        extra = {type(None): 0, LastLevelMaxPool: 1, LastLevelP6P7: 2}.get(type(fpn.extra_blocks))
        if extra is not None:
            return len(fpn.inner_blocks) + extra
    if isinstance(backbone, SSDFeatureExtractorVGG):  # conv4_3 (after L2Norm), then one map per extra block
        return 1 + len(backbone.extra)
    if isinstance(backbone, SSDLiteFeatureExtractorMobileNet):  # C4 and C5 stages, then the extra blocks
        return len(backbone.features) + len(backbone.extra)
    return probe_feature_maps(backbone)


def probe_feature_maps(backbone: nn.Module, size: int = PROBE_SIZE) -> int | None:
    """Run ``backbone`` on the meta device with meta stand-ins for every tensor; the model is untouched."""
    stand_ins = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*backbone.named_parameters(), *backbone.named_buffers()]
    }
    image = torch.empty(1, 3, size, size, device="meta")
    try:
        with torch.no_grad():
            out = functional_call(backbone, stand_ins, (image,), tie_weights=False, strict=False)
    except Exception:  # noqa: BLE001 - an unreadable backbone just means "unknown"
        return None
    if isinstance(out, torch.Tensor):
        return 1
    return len(out) if isinstance(out, (dict, list, tuple)) else None


def anchor_levels(generator: nn.Module) -> int | None:
    """Feature-map levels the anchor generator is configured for."""
    if isinstance(generator, AnchorGenerator):
        return len(generator.sizes)
    if isinstance(generator, DefaultBoxGenerator):
        return len(generator.aspect_ratios)
    return None


def anchors_per_location(generator: nn.Module | None) -> list[int] | None:
    if generator is None or not hasattr(generator, "num_anchors_per_location"):
        return None
    if isinstance(generator, AnchorGenerator) and len(generator.sizes) != len(generator.aspect_ratios):
        return None  # num_anchors_per_location() zips the two and silently drops levels
    return list(generator.num_anchors_per_location())


def uniform_anchors(generator: nn.Module | None) -> int | None:
    """The anchors per location when every level has the same number (RPN/RetinaNet/FCOS share one head)."""
    counts = anchors_per_location(generator)
    if counts and len(set(counts)) == 1:
        return counts[0]
    return None


def lint_anchor_generator(generator: nn.Module | None, path: str, backbone: nn.Module) -> list[Problem]:
    """HF205 sizes vs aspect ratios; HF204 anchor levels vs the backbone's feature maps."""
    if generator is None:
        return []
    problems = []
    if isinstance(generator, AnchorGenerator) and len(generator.sizes) != len(generator.aspect_ratios):
        problems.append(
            problem(
                "HF205",
                path,
                "aspect_ratios",
                f"`{module_name(path)}` has {len(generator.sizes)} size tuples but {len(generator.aspect_ratios)} "
                "aspect-ratio tuples",
                [
                    f"`{path}.sizes` = {tuple(generator.sizes)}",
                    f"`{path}.aspect_ratios` = {tuple(generator.aspect_ratios)}",
                    "anchors are made per feature map from one size tuple and one aspect-ratio tuple",
                ],
                f"model.{path}.aspect_ratios = ({tuple(generator.aspect_ratios[0])},) * "
                f"{len(generator.sizes)}",
            )
        )
    levels, maps = anchor_levels(generator), feature_map_count(backbone)
    if levels is not None and maps is not None and levels != maps:
        problems.append(_levels_problem(generator, path, levels, maps))
    return problems


def _levels_problem(generator: nn.Module, path: str, levels: int, maps: int) -> Problem:
    facts = [
        f"the backbone returns {maps} feature map{'s' * (maps != 1)}",
        f"`{module_name(path)}` is configured for {levels} level{'s' * (levels != 1)}",
    ]
    if isinstance(generator, AnchorGenerator):
        sizes = list(generator.sizes)[:maps]
        while len(sizes) < maps:  # each extra level doubles the previous level's sizes, as FPN builders do
            sizes.append(tuple(2 * s for s in sizes[-1]))
        sizes = tuple(sizes)
        ratios = tuple(generator.aspect_ratios[0])
        fix = (
            f"model.{path} = torchvision.models.detection.anchor_utils.AnchorGenerator("
            f"sizes={sizes}, aspect_ratios=({ratios},) * {maps})"
        )
    else:
        fix = f"give `{module_name(path)}` one aspect-ratio list per feature map ({maps} in all)"
    summary = f"`{module_name(path)}` makes anchors for {levels} feature maps but the backbone returns {maps}"
    return problem(
        "HF204",
        path,
        "sizes" if isinstance(generator, AnchorGenerator) else "aspect_ratios",
        summary,
        facts,
        fix,
    )


def size_rule(model: nn.Module) -> SizeRule:
    """What ``GeneralizedRCNNTransform`` does to every image before the backbone sees it."""
    t = model.transform
    notes = []
    if t.fixed_size is not None:
        h, w = t.fixed_size
        notes.append(f"every image is resized to exactly {h}x{w} by `transform` (fixed_size)")
    else:
        short = " or ".join(str(s) for s in t.min_size)
        notes.append(
            f"every image is resized so its shorter side is {short} and its longer side at most "
            f"{t.max_size} (`transform.min_size`, `transform.max_size`)"
        )
    if t.size_divisible > 1:  # SSD's transforms use 1: nothing to pad
        notes.append(f"the resized batch is zero-padded so H and W are multiples of {t.size_divisible}")
    return SizeRule(resized_internally=True, minimum=1, notes=notes)


def default_inputs() -> list[InputSpec]:
    """Two COCO-sized images: the transform resizes whatever comes in, SSD's included."""
    return [InputSpec.images((3, 800, 1333), (3, 800, 1333))]


def prior_init(prior_probability: float = 0.01):
    """RetinaNet/FCOS ``cls_logits`` init: N(0, 0.01) weights, bias -log((1-pi)/pi) so p starts at pi."""

    def init(layer: nn.Module) -> None:
        nn.init.normal_(layer.weight, std=0.01)
        if layer.bias is not None:
            nn.init.constant_(layer.bias, -math.log((1 - prior_probability) / prior_probability))

    return init


def per_anchor_rows(keep: Sequence[int], source_columns: int, num_anchors: int) -> list[int]:
    """Source channels for a head laid out ``view(N, A, K, H, W)``: new channel a*K+i <- a*K_src+keep[i]."""
    return [a * source_columns + k for a in range(num_anchors) for k in keep]


def box_rows(classes: Sequence[int]) -> list[int]:
    """Source rows of a ``bbox_pred`` with 4 rows per class, for the given source classes in order."""
    return [4 * c + j for c in classes for j in range(4)]


def loss_sum(output: Any) -> torch.Tensor:
    """Detection models return a dict of losses in train mode; the loss to step on is their sum."""
    if isinstance(output, dict):
        return torch.stack([v.reshape(()) for v in output.values()]).sum()
    if isinstance(output, tuple) and output and isinstance(output[0], dict):  # scripted: (losses, detections)
        return loss_sum(output[0])
    raise TypeError(f"expected a dict of losses from a train-mode detector, got {type(output).__name__}")


def max_label(output: Any) -> int | None:
    """The highest label in an eval-mode output (list of dicts with ``labels``), or None if empty."""
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], list):
        output = output[1]
    labels = [d["labels"] for d in output if isinstance(d, dict) and "labels" in d and d["labels"].numel()]
    return max(int(lab.max()) for lab in labels) if labels else None
