"""torchvision image and video classifiers, and the float models of their quantizable variants.

Every builder in ``torchvision.models`` and ``torchvision.models.video`` is described by a ``Layout``:
the module whose output reaches the classifier, the classifier container (its last Linear or conv is the
head), the attributes that repeat the class count, the auxiliary heads and torchvision's own init for the
head layer. The quantizable classes (``quantized_*`` builders with ``quantize=False``) subclass the float
ones, so ``isinstance`` covers them. Nothing here runs the model: widths are read from the layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.alexnet import AlexNet
from torchvision.models.convnext import ConvNeXt
from torchvision.models.densenet import DenseNet
from torchvision.models.efficientnet import EfficientNet
from torchvision.models.googlenet import GoogLeNet
from torchvision.models.inception import Inception3
from torchvision.models.maxvit import MaxVit
from torchvision.models.mnasnet import MNASNet
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.mobilenetv3 import MobileNetV3
from torchvision.models.regnet import RegNet
from torchvision.models.resnet import ResNet
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.models.squeezenet import SqueezeNet
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vgg import VGG
from torchvision.models.video.mvit import MViT
from torchvision.models.video.resnet import VideoResNet
from torchvision.models.video.s3d import S3D
from torchvision.models.video.swin_transformer import SwinTransformer3d
from torchvision.models.vision_transformer import VisionTransformer

from headfit.diagnosis import Problem
from headfit.errors import UsageError
from headfit.families import _util as u
from headfit.families._classifier_chain import (
    AUX_MISMATCH,
    classifier_chain,
    concat_width,
    replace_head,
    width_problems,
)
from headfit.families.base import AdaptSummary, Family, HeadInfo, SizeRule, register_family
from headfit.inputs import InputSpec
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import in_width, is_class_layer, layer_code, out_width
from headfit.smoke import SmokeBatch

METADATA_MISMATCH = "HF221"
SMOKE_SIZE = 64  # every torchvision CNN classifier runs a train step at 64x64 (AlexNet needs >= 63)
SMOKE_CLIP = (8, 64, 64)  # (T, H, W) for video models that take any clip: ~0.5 s instead of ~25 s (Swin3D)
AUX_LOSS_WEIGHT = 0.4  # GoogLeNet/Inception v3 auxiliary logits (PyTorch's fine-tuning tutorial)


@register_family
class TorchvisionClassification(Family):
    name = "torchvision-classification"
    priority = 20
    examples = ("torchvision:resnet18", "torchvision:googlenet")
    aux_loss_weight = AUX_LOSS_WEIGHT

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return layout_of(model) is not None

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        layout = layout_of(model)
        head = main_head(model, layout)
        if head is None:
            return []
        attributes = {a: getattr(model, a) for a in layout.metadata if hasattr(model, a)}
        found = [HeadInfo(head[0], "classifier", out_width(head[1]), attributes)]
        found += [HeadInfo(p, "aux_classifier", out_width(m)) for _, p, m in _aux_heads(model, layout)]
        return found

    def num_classes(self, model: nn.Module) -> int | None:
        head = main_head(model, layout_of(model))
        return None if head is None else out_width(head[1])

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        return lint_classifier(model, layout_of(model))

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        if layout_of(model).video:
            return [InputSpec.batch(1, 3, *_video_clip(model))]
        size = _image_size(model)
        return [InputSpec.batch(2, 3, size, size)]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        if isinstance(getattr(model, "image_size", None), int):
            size = model.image_size
            return SizeRule(
                exact=(size, size), notes=[f"ViT's position embeddings fix the input at {size}x{size}"]
            )
        if getattr(model, "pos_encoding", None) is not None:
            frames, height, width = _video_clip(model)
            return SizeRule(
                exact=(height, width), notes=[f"MViT's positional encoding fixes clips at {frames} frames"]
            )
        if isinstance(model, Inception3):
            return SizeRule(minimum=75, notes=["Inception v3 is trained at 299x299"])
        return None

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        keep = self.checked_options(options).get("keep")
        layout = layout_of(model)
        num_classes = u.check_num_classes(num_classes)
        head = main_head(model, layout)
        if head is None:
            raise UsageError(_no_head_message(model, layout))
        rows = u.check_keep(keep, num_classes, out_width(head[1]))
        replace_head(model, head[0], num_classes, layout.init, rows)
        replaced = [head[0]]
        for aux, path, _ in _aux_heads(model, layout):
            replace_head(model, path, num_classes, aux.init, rows)
            replaced.append(path)
        attributes = {a: num_classes for a in layout.metadata if hasattr(model, a)}
        for attribute, value in attributes.items():
            setattr(model, attribute, value)
        return AdaptSummary(
            family=self.name,
            num_classes=num_classes,
            head_outputs=self.outputs_for(num_classes),
            replaced=replaced,
            attributes=attributes,
            notes=_adapt_notes(layout, replaced, attributes, num_classes),
            kept_rows=rows or [],
        )

    # -- smoke step (verification after adapt) ---------------------------------------------------------

    def smoke_batch(self, model: nn.Module, num_classes: int) -> SmokeBatch:
        device = next(model.parameters()).device
        batch = _smoke_batch_size(model)
        images = torch.randn((batch, *_smoke_shape(model)), device=device)
        return SmokeBatch(args=(images,), targets=torch.randint(num_classes, (batch,), device=device))

    def smoke_loss(self, model: nn.Module, output: Any, batch: SmokeBatch) -> Any:
        """Cross-entropy on the logits; auxiliary logits (GoogLeNet/Inception train mode) weigh
        ``aux_loss_weight``."""
        logits, *aux = logit_tensors(output)
        loss = F.cross_entropy(logits, batch.targets)
        for extra in aux:
            loss = loss + self.aux_loss_weight * F.cross_entropy(extra, batch.targets)
        return loss

    def output_classes(self, model: nn.Module, output: Any) -> int | None:
        logits = logit_tensors(output)[0]
        return int(logits.shape[1])

    # -- training --------------------------------------------------------------------------------------

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        layout = layout_of(model)
        head = main_head(model, layout)
        return [] if head is None else _live_facts(model, layout, head)


# -- layouts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aux:
    """An auxiliary classifier: the layers its features flow through (the last one is its head)."""

    source: str  # module whose output feeds chain[0]
    chain: tuple[str, ...]
    init: u.Init | None
    spatial: int = 1  # positions flattened into chain[0] (GoogLeNet's aux pools to 4x4)


@dataclass(frozen=True)
class Layout:
    """Where one architecture keeps its classifier and what must agree with it."""

    name: str  # the architecture in words ("ResNet")
    features: str  # module whose output reaches the classifier
    classifier: str  # the classifier container; its last Linear/conv is the head
    init: u.Init | None = None  # torchvision's init for the head layer (None: PyTorch's default)
    metadata: tuple[str, ...] = ()  # model attributes that repeat the class count
    aux: tuple[Aux, ...] = ()
    pooled_positions: Callable[[nn.Module], int] | None = None  # AlexNet/VGG flatten avgpool's grid
    video: bool = False


def _avgpool_positions(model: nn.Module) -> int:
    size = model.avgpool.output_size
    size = (size, size) if isinstance(size, int) else size
    return size[0] * size[1]


@cache
def _layouts() -> tuple[tuple[type, Layout], ...]:
    """(class, layout) pairs, checked in order with isinstance (built once: the inits are closures)."""
    googlenet_init = u.trunc_normal_init(0.01, zero_bias=False)
    return (
        (ResNet, Layout("ResNet", "layer4", "fc")),
        (RegNet, Layout("RegNet", "trunk_output", "fc", u.normal_init(0.01))),
        (ShuffleNetV2, Layout("ShuffleNetV2", "conv5", "fc")),
        (
            GoogLeNet,
            Layout(
                "GoogLeNet",
                "inception5b",
                "fc",
                googlenet_init,
                aux=tuple(
                    Aux(f"{a}.conv", (f"{a}.fc1", f"{a}.fc2"), googlenet_init, spatial=16)
                    for a in ("aux1", "aux2")
                ),
            ),
        ),
        (
            Inception3,
            Layout(
                "Inception3",
                "Mixed_7c",
                "fc",
                u.trunc_normal_init(0.1, zero_bias=False),
                aux=(Aux("AuxLogits.conv1", ("AuxLogits.fc",), u.trunc_normal_init(0.001, zero_bias=False)),),
            ),
        ),
        (AlexNet, Layout("AlexNet", "features", "classifier", pooled_positions=_avgpool_positions)),
        (
            VGG,
            Layout("VGG", "features", "classifier", u.normal_init(0.01), pooled_positions=_avgpool_positions),
        ),
        (DenseNet, Layout("DenseNet", "features", "classifier", u.zero_bias_init)),
        (MobileNetV2, Layout("MobileNetV2", "features", "classifier", u.normal_init(0.01))),
        (MobileNetV3, Layout("MobileNetV3", "features", "classifier", u.normal_init(0.01))),
        (EfficientNet, Layout("EfficientNet", "features", "classifier", u.uniform_init)),
        (
            MNASNet,
            Layout("MNASNet", "layers", "classifier", u.kaiming_uniform_init, ("num_classes",)),
        ),
        (ConvNeXt, Layout("ConvNeXt", "features", "classifier", u.trunc_normal_init(0.02))),
        (
            VisionTransformer,
            Layout("VisionTransformer", "encoder", "heads", u.zeros_init, ("num_classes",)),
        ),
        (
            SwinTransformer,
            Layout("SwinTransformer", "norm", "head", u.trunc_normal_init(0.02), ("num_classes",)),
        ),
        (MaxVit, Layout("MaxVit", "blocks", "classifier", u.normal_init(0.02))),
        (
            SqueezeNet,
            Layout("SqueezeNet", "features", "classifier", u.normal_init(0.01), ("num_classes",)),
        ),
        (VideoResNet, Layout("VideoResNet", "layer4", "fc", u.normal_init(0.01), video=True)),
        (MViT, Layout("MViT", "norm", "head", u.trunc_normal_init(0.02), video=True)),
        (S3D, Layout("S3D", "features", "classifier", video=True)),
        (
            SwinTransformer3d,
            Layout(
                "SwinTransformer3d", "norm", "head", u.trunc_normal_init(0.02), ("num_classes",), video=True
            ),
        ),
    )


def layout_of(model: nn.Module) -> Layout | None:
    """The layout of a torchvision classifier, or None for any other model."""
    for cls, layout in _layouts():
        if isinstance(model, cls):
            return layout
    return None


# -- heads -----------------------------------------------------------------------------------------------


def feature_width(model: nn.Module, layout: Layout) -> int | None:
    """Features per sample that reach the classifier, read from the layers before it."""
    if not u.has_module(model, layout.features):
        return None
    width = u.last_width(u.get_module(model, layout.features), concat_width)
    if width is not None and layout.pooled_positions is not None:
        width *= layout.pooled_positions(model)
    return width


def main_head(model: nn.Module, layout: Layout) -> tuple[str, nn.Module] | None:
    """(path, layer) of the last Linear or conv in the classifier container."""
    if not u.has_module(model, layout.classifier):
        return None
    heads = [(p, m) for p, m in classifier_chain(model, layout.classifier) if is_class_layer(m)]
    return heads[-1] if heads else None


def _aux_heads(model: nn.Module, layout: Layout) -> list[tuple[Aux, str, nn.Module]]:
    present = []
    for aux in layout.aux:
        head_path = aux.chain[-1]
        if u.has_module(model, head_path):
            present.append((aux, head_path, u.get_module(model, head_path)))
    return present


# -- lint ------------------------------------------------------------------------------------------------


def lint_classifier(model: nn.Module, layout: Layout) -> list[Problem]:
    """Every head invariant of ``model`` that does not hold."""
    head = main_head(model, layout)
    if head is None:
        return []
    path, layer = head
    outputs = out_width(layer)
    features = feature_width(model, layout)
    problems = width_problems(layout.features, features, classifier_chain(model, layout.classifier))
    problems += _metadata_problems(model, layout, outputs, path)
    problems += _aux_problems(model, layout, outputs, path)
    return problems


def _metadata_problems(model: nn.Module, layout: Layout, outputs: int, head: str) -> list[Problem]:
    problems = []
    for attribute in layout.metadata:
        value = getattr(model, attribute, None)
        if isinstance(value, int) and value != outputs:
            problems.append(
                Problem(
                    code=METADATA_MISMATCH,
                    module="",
                    attribute=attribute,
                    summary=f"`{attribute}` says {value} classes but `{module_name(head)}` emits {outputs}",
                    facts=[f"`{attribute}` is {value}", f"`{module_name(head)}` has {outputs} outputs"],
                    fix=f"model.{attribute} = {outputs}",
                )
            )
    return problems


def _aux_problems(model: nn.Module, layout: Layout, outputs: int, head: str) -> list[Problem]:
    problems = []
    for aux, path, layer in _aux_heads(model, layout):
        chain = [(p, u.get_module(model, p)) for p in aux.chain]
        width = u.last_width(u.get_module(model, aux.source)) if u.has_module(model, aux.source) else None
        problems += width_problems(aux.source, width and width * aux.spatial, chain)
        aux_outputs = out_width(layer)
        if aux_outputs != outputs:
            problems.append(
                Problem(
                    code=AUX_MISMATCH,
                    module=path,
                    attribute="out_features",
                    summary=f"auxiliary head `{module_name(path)}` emits {aux_outputs} classes but the main head `{module_name(head)}` "
                    f"emits {outputs}",
                    facts=[f"`{module_name(path)}` has {aux_outputs} outputs", f"`{module_name(head)}` has {outputs} outputs"],
                    fix=f"{module_expr('model', path)} = {layer_code(layer, in_width(layer), outputs)}",
                )
            )
    return problems


# -- adapt -----------------------------------------------------------------------------------------------


def _no_head_message(model: nn.Module, layout: Layout) -> str:
    container = u.get_module(model, layout.classifier) if u.has_module(model, layout.classifier) else None
    found = type(container).__name__
    if container is not None and ".quantized." in type(container).__module__:
        return (
            f"`{module_name(layout.classifier)}` of this {layout.name} is a converted quantized `{found}`, which cannot be "
            "re-headed: build the float model (`quantize=False`), adapt it, fine-tune, then quantize"
        )
    return f"{layout.name} has no Linear or conv layer in `{module_name(layout.classifier)}` to re-head (found `{found}`)"


def _adapt_notes(
    layout: Layout, replaced: list[str], attributes: dict[str, int], num_classes: int
) -> list[str]:
    heads = ", ".join(f"`{module_name(p)}`" for p in replaced)
    notes = [f"{layout.name}: {heads} now {'emit' if len(replaced) > 1 else 'emits'} {num_classes} classes"]
    if len(replaced) > 1:
        notes.append(
            f"the auxiliary heads were re-headed too; in train mode the model returns a namedtuple "
            f"(logits first), so weight the auxiliary losses (e.g. {AUX_LOSS_WEIGHT}) or read `.logits`"
        )
    if attributes:
        notes.append("updated " + ", ".join(f"`{a}` = {v}" for a, v in attributes.items()))
    return notes


# -- inputs and smoke step -------------------------------------------------------------------------------


def _video_clip(model: nn.Module) -> tuple[int, int, int]:
    """(T, H, W) of a clip the video model accepts: MViT's positional encoding fixes it."""
    pos = getattr(model, "pos_encoding", None)
    if pos is not None and hasattr(pos, "spatial_size"):
        stride = model.conv_proj.stride
        return pos.temporal_size * stride[0], pos.spatial_size[0] * stride[1], pos.spatial_size[1] * stride[2]
    if isinstance(model, VideoResNet):
        return 16, 112, 112
    return 16, 224, 224


def _smoke_shape(model: nn.Module) -> tuple[int, ...]:
    """One sample for a real CPU train step: as small as the model allows (CNNs: 64x64)."""
    if layout_of(model).video:
        return (3, *_smoke_clip(model))
    exact = isinstance(getattr(model, "image_size", None), int) or isinstance(model, (Inception3, MaxVit))
    size = _image_size(model) if exact else SMOKE_SIZE
    return (3, size, size)


def _smoke_clip(model: nn.Module) -> tuple[int, int, int]:
    """The smallest clip a video model runs: MViT's positional encoding fixes it, S3D's final 2x7x7
    average pool needs 16x224x224; VideoResNet and Swin3D pool adaptively and pad to their windows."""
    if getattr(model, "pos_encoding", None) is not None or isinstance(model, S3D):
        return _video_clip(model)
    return SMOKE_CLIP


def _smoke_batch_size(model: nn.Module) -> int:
    """Two images; one clip for video models (a clip is 16 images, and its BatchNorms see T*H*W values)."""
    return 1 if layout_of(model).video else 2


def _image_size(model: nn.Module) -> int:
    if isinstance(getattr(model, "image_size", None), int):
        return model.image_size
    return 299 if isinstance(model, Inception3) else 224


def logit_tensors(output: Any) -> list[Any]:
    """The logits tensors of an output: a Tensor, or GoogLeNetOutputs/InceptionOutputs (aux may be None)."""
    if isinstance(output, tuple):
        return [t for t in output if t is not None]
    return [output]


# -- live evidence ---------------------------------------------------------------------------------------


def _live_facts(model: nn.Module, layout: Layout, head: tuple[str, nn.Module]) -> list[str]:
    path, layer = head
    facts = [f"`{module_name(path)}` takes {in_width(layer)} features and emits {out_width(layer)} classes"]
    width = feature_width(model, layout)
    if width is not None:
        facts.append(f"`{module_name(layout.features)}` produces {width} features per sample")
    facts += [f"`{a}` is {getattr(model, a)}" for a in layout.metadata if hasattr(model, a)]
    facts += [f"auxiliary head `{module_name(p)}` emits {out_width(m)} classes" for _, p, m in _aux_heads(model, layout)]
    return facts
