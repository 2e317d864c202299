"""timm models: every one answers ``get_classifier()`` / ``reset_classifier(K)`` and names its classifier in
``pretrained_cfg['classifier']`` (``'fc'``, ``'head'``, ``'head.fc'``, ``('head', 'head_dist')``, ...).

headfit reads the head through that metadata, so one module covers the whole zoo: ResNets, EfficientNets,
ConvNeXts, ViTs, distilled DeiTs with two heads, LeViT's ``NormLinear`` heads, MetaFormer MLP heads.
timm is optional: nothing here imports it unless the model is a timm model.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import torch
from torch import nn

from headfit.diagnosis import Cause, Diagnosis, Problem
from headfit.errors import UsageError
from headfit.families._util import check_keep, check_num_classes, copy_rows, new_layer_like, set_module
from headfit.families.base import (
    AdaptSummary,
    Evidence,
    Family,
    HeadInfo,
    HeadKind,
    SizeRule,
    register_family,
)
from headfit.inputs import InputSpec
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import in_width, layer_code, out_width

_INPUT_SIZE = re.compile(r"Input (height|width) \((\d+)\) doesn't match model \((\d+)\)")


@register_family
class TimmFamily(Family):
    name = "timm"
    priority = 40
    examples = ("timm:resnet18", "timm:deit_tiny_distilled_patch16_224")
    lint_confidence = (0.9, 0.75)

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        """A timm model by its class's module and timm's head API; timm itself is never imported here."""
        module = type(model).__module__ or ""
        return module.startswith("timm.") and all(
            callable(getattr(model, name, None)) for name in ("get_classifier", "reset_classifier")
        )

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        attributes = {"num_classes": getattr(model, "num_classes", None)}
        return [
            HeadInfo(path, _head_kind(i, path), out_width(layer), dict(attributes))
            for i, (path, layer) in enumerate(classifier_layers(model))
        ]

    def num_classes(self, model: nn.Module) -> int | None:
        value = getattr(model, "num_classes", None)
        if isinstance(value, int):
            return value
        layers = classifier_layers(model)
        return out_width(layers[0][1]) if layers else None

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        layers = classifier_layers(model)
        replaced = _replaced_heads(model)
        problems = [p for path, layer in layers if (p := _width_problem(model, path, layer))]
        problems = replaced + [p for p in problems if p.module not in {r.module for r in replaced}]
        problems.extend(_count_problems(model, layers))
        return problems

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        """The pretrained_cfg input size (the patch embedding's when it is strict), batch 2."""
        channels, height, width = _cfg_input_size(model)
        rule = self.size_rule(model)
        if rule is not None and rule.exact is not None:
            height, width = rule.exact
        return [InputSpec.batch(2, _in_channels(model) or channels, height, width)]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        patch_embed = getattr(model, "patch_embed", None)
        img_size = _pair(getattr(patch_embed, "img_size", None))
        patch = _pair(getattr(patch_embed, "patch_size", None))
        if img_size is not None and patch is not None:
            return _vit_size_rule(model, patch_embed, img_size, patch)
        if _cfg(model).get("fixed_input_size"):
            _, height, width = _cfg_input_size(model)
            note = f"timm's pretrained_cfg marks the input size of `{type(model).__name__}` as fixed"
            return SizeRule(exact=(height, width), notes=[note])
        reduction = _max_reduction(model)
        if reduction is None:
            return None
        note = (
            f"the last feature map is {reduction}x smaller than the input, then pooled globally: "
            f"below {reduction}x{reduction} it is padded up from less than one pixel"
        )
        return SizeRule(minimum=reduction, notes=[note])

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """``reset_classifier(K)`` as timm does, keeping every tensor outside the classifier layers."""
        keep = self.checked_options(options).get("keep")
        check_num_classes(num_classes)
        old_layers = classifier_layers(model)
        kept = _check_keep(keep, num_classes, old_layers)
        old_tensors = dict(model.state_dict(keep_vars=True))
        old_count = self.num_classes(model)
        how = _reset(model, num_classes, old_layers)
        new_layers = classifier_layers(model)
        replaced = [path for path, _ in new_layers]
        _match_old_layers(new_layers, dict(old_layers), model)
        _restore_outside(model, replaced, old_tensors)
        if kept:
            _copy_kept_rows(new_layers, dict(old_layers), kept)
        attributes = _set_count_attributes(model, num_classes, replaced)
        return AdaptSummary(
            family=self.name,
            num_classes=num_classes,
            head_outputs=self.outputs_for(num_classes),
            replaced=replaced,
            attributes=attributes,
            notes=_adapt_notes(how, replaced, num_classes, old_count),
            kept_rows=kept,
        )

    # -- training --------------------------------------------------------------------------------------

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        return _head_facts(model)

    def explain_failure(self, model: nn.Module, module_path: str, diagnosis: Diagnosis) -> Evidence:
        """The base's facts and lint causes, and timm's own input-size check read from the message."""
        evidence = super().explain_failure(model, module_path, diagnosis)
        for cause in evidence.causes:
            if cause.attribute == REPLACED_HEAD_ATTR:  # what the forward then fails on follows from it
                cause.confidence = 0.97
        size_cause = _input_size_cause(model, diagnosis)
        if size_cause is not None:
            evidence.facts.extend(_size_facts(self.size_rule(model)))
            evidence.causes.insert(0, size_cause)
        return evidence


# -- the classifier layers -------------------------------------------------------------------------------


def classifier_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The class-dependent leaf layers (Linear or 1x1 Conv), found from ``pretrained_cfg['classifier']``.

    A cfg name may point at a wrapper (LeViT's ``NormLinear``, a user's ``Sequential``) or at a path that a
    user's replacement removed (``head.fc`` after ``model.head = nn.Linear(...)``): the nearest existing
    module on that path is used, and inside it the last Linear/Conv. An ``Identity`` (``num_classes=0``)
    has no classifier layer.
    """
    layers: list[tuple[str, nn.Module]] = []
    for name in _classifier_names(model):
        found = _leaf_under(model, _existing_prefix(model, name))
        if found is not None and all(found[0] != path for path, _ in layers):
            layers.append(found)
    return layers


def _classifier_names(model: nn.Module) -> list[str]:
    names = _cfg(model).get("classifier") or []
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        names = [_path_of(model, m) for m in _as_tuple(model.get_classifier())]
    return [n for n in names if n is not None]


def _existing_prefix(model: nn.Module, name: str) -> str:
    parts = name.split(".")
    modules = dict(model.named_modules())
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _leaf_under(model: nn.Module, path: str) -> tuple[str, nn.Module] | None:
    if not path:
        return None
    module = model.get_submodule(path)
    if _is_class_layer(module):
        return path, module
    inner = [(f"{path}.{sub}", m) for sub, m in module.named_modules() if sub and _is_class_layer(m)]
    return inner[-1] if inner else None


def _path_of(model: nn.Module, module: nn.Module) -> str | None:
    return next((path for path, m in model.named_modules() if m is module and path), None)


def _as_tuple(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _is_class_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d))


def _head_kind(index: int, path: str) -> HeadKind:
    if index == 0:
        return "classifier"
    return "distillation_classifier" if "dist" in path else "aux_classifier"


# -- lint ------------------------------------------------------------------------------------------------


def _feature_widths(model: nn.Module, path: str) -> set[int]:
    """Widths that may legitimately reach the classifier at ``path``.

    timm's own: ``head_hidden_size`` (after a pre-logits MLP) and ``num_features``; plus the output of a
    Linear/Conv just before it in the same head (MetaFormer's ``MlpHead`` fc1 -> fc2) and per-branch
    ``embed_dim`` values (CrossViT has one head per branch).
    """
    branch = _branch_width(model, path)
    if branch is not None:
        return {branch}
    widths = {_expected_width(model)} - {None}
    previous = _previous_layer(model, path)
    if previous is not None:
        widths.add(out_width(previous))
    return widths


def _branch_width(model: nn.Module, path: str) -> int | None:
    """Multi-branch models (CrossViT, EfficientViM) keep one head per branch in a ModuleList; head i sees
    ``embed_dim[i]``, or nothing headfit can read (then any width is accepted)."""
    parent_path, _, index = path.rpartition(".")
    if not (parent_path and index.isdigit() and isinstance(model.get_submodule(parent_path), nn.ModuleList)):
        return None
    embed = getattr(model, "embed_dim", None)
    if isinstance(embed, (list, tuple)) and int(index) < len(embed):
        return int(embed[int(index)])
    return in_width(model.get_submodule(path))


def _previous_layer(model: nn.Module, path: str) -> nn.Module | None:
    parent_path = path.rpartition(".")[0]
    if not parent_path:
        return None
    before = None
    for sub, module in model.get_submodule(parent_path).named_modules():
        if f"{parent_path}.{sub}" == path:
            return before
        if sub and _is_class_layer(module):
            before = module
    return None


def _width_problem(model: nn.Module, path: str, layer: nn.Module) -> Problem | None:
    widths = _feature_widths(model, path)
    width_in = in_width(layer)
    if not widths or width_in in widths:
        return None
    expected = _branch_width(model, path) or _expected_width(model)
    out = out_width(layer)
    what = "features" if hasattr(layer, "in_features") else "channels"
    return Problem(
        code="HF230",
        module=path,
        attribute="in_features" if hasattr(layer, "in_features") else "in_channels",
        summary=f"`{module_name(path)}` takes {width_in} {what} but the model's features are {expected} wide",
        facts=[
            f"`{module_name(path)}` is {_layer_text(layer)}",
            f"`num_features` is {getattr(model, 'num_features', '?')}"
            + (
                f", `head_hidden_size` is {model.head_hidden_size}"
                if hasattr(model, "head_hidden_size")
                else ""
            ),
            f"the forward pass will fail at `{module_name(path)}` with a {expected} vs {width_in} size mismatch",
        ],
        fix=f"{module_expr('model', path)} = {layer_code(layer, expected, out)}",
    )


REPLACED_HEAD_ATTR = "fc"  # the class layer inside a timm head module (``head.fc``)


def _replaced_heads(model: nn.Module) -> list[Problem]:
    """HF236: the cfg's classifier is ``head.fc`` but ``head`` itself is a bare class layer: the head
    module with its pooling and norm was replaced wholesale (``model.head = nn.Linear(...)``)."""
    modules = dict(model.named_modules())
    problems = []
    for name in _classifier_names(model):
        holder, _, leaf = name.rpartition(".")
        layer = modules.get(holder) if holder and name not in modules else None
        if layer is None or not _is_class_layer(layer) or leaf != REPLACED_HEAD_ATTR:
            continue
        out = out_width(layer)
        problems.append(
            Problem(
                code="HF236",
                module=holder,
                attribute=REPLACED_HEAD_ATTR,
                summary=f"`{holder}` was replaced by a bare `{type(layer).__name__}`: {type(model).__name__}'s "
                f"head module held the global pooling and norm before `{name}`, and they are gone",
                facts=[
                    f"timm's `pretrained_cfg['classifier']` for {type(model).__name__} is `{name}`; "
                    f"`{holder}` is now {_layer_text(layer)}",
                    "without the head's pooling the class layer gets the unpooled [N, C, H, W] feature map",
                ],
                fix=f"model.reset_classifier({out})  # instead of replacing `{holder}`: keeps its pooling and norm "
                f"(or replace only {module_expr('model', name)} = {layer_code(layer, in_width(layer), out)})",
            )
        )
    return problems


def _expected_width(model: nn.Module) -> int | None:
    """timm's ``head_hidden_size`` is the width the classifier sees (after any pre-logits layer)."""
    for name in ("head_hidden_size", "num_features"):
        if isinstance(getattr(model, name, None), int):
            return getattr(model, name)
    return None


def _count_problems(model: nn.Module, layers: list[tuple[str, nn.Module]]) -> list[Problem]:
    """Heads that disagree with each other (HF232) or, when they agree, with ``num_classes`` (HF231)."""
    if not layers:
        return []
    declared = getattr(model, "num_classes", None)
    outs = {path: out_width(layer) for path, layer in layers}
    if len(set(outs.values())) > 1:
        return [_heads_disagree(model, outs, declared)]
    out = next(iter(outs.values()))
    if not isinstance(declared, int) or declared == out:
        return []
    main = layers[0][0]
    return [
        Problem(
            code="HF231",
            module="",
            attribute="num_classes",
            summary=f"`num_classes` says {declared} but `{module_name(main)}` emits {out} classes",
            facts=[
                f"`{module_name(main)}` is {_layer_text(layers[0][1])}",
                f"`num_classes` is {declared}: timm's `reset_classifier`, `pretrained_cfg` loading and "
                "code that reads `model.num_classes` will use the wrong count",
            ],
            fix=f"model.num_classes = {out}",
        )
    ]


def _heads_disagree(model: nn.Module, outs: dict[str, int], declared: Any) -> Problem:
    """The odd head is the one that disagrees with ``num_classes``; the user most likely meant its count."""
    odd = next((p for p, n in outs.items() if n != declared), next(iter(outs)))
    wanted = outs[odd]
    listing = ", ".join(f"`{module_name(p)}` emits {n}" for p, n in outs.items())
    return Problem(
        code="HF232",
        module=odd,
        attribute="out_features",
        summary=f"the classifier heads disagree: {listing}",
        facts=[
            f"`{type(model).__name__}` averages or stacks its heads, so they must emit the same number of classes",
            f"`num_classes` is {declared}",
        ],
        fix=f"model.reset_classifier({wanted})",
    )


def _layer_text(layer: nn.Module) -> str:
    return f"`{type(layer).__name__}({in_width(layer)}, {out_width(layer)})`"


def _cfg(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    return dict(cfg)


def _cfg_input_size(model: nn.Module) -> tuple[int, int, int]:
    size = _cfg(model).get("input_size") or (3, 224, 224)
    return int(size[0]), int(size[1]), int(size[2])


def _in_channels(model: nn.Module) -> int | None:
    """Channels of the input image: the first conv's, before any space-to-depth stem (TResNet)."""
    first = _cfg(model).get("first_conv")
    first = first[0] if isinstance(first, (tuple, list)) else first
    modules = dict(model.named_modules())
    layer = modules.get(first) if first else None
    channels = getattr(layer, "in_channels", None) or getattr(layer, "in_features", None)
    if channels is None:
        return None
    return channels // _space_to_depth_factor(model)


def _space_to_depth_factor(model: nn.Module) -> int:
    """How many times a space-to-depth stem multiplies the image's channels (block size squared)."""
    from timm.layers import SpaceToDepth

    stems = [m for m in model.modules() if isinstance(m, SpaceToDepth)]
    return stems[0].bs ** 2 if stems else 1


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def _vit_size_rule(
    model: nn.Module, patch_embed: nn.Module, img_size: tuple[int, int], patch: tuple[int, int]
) -> SizeRule:
    name = f"`{type(model).__name__}`"
    if getattr(model, "dynamic_img_size", False):
        if getattr(patch_embed, "dynamic_img_pad", False):
            return SizeRule(
                minimum=max(patch),
                notes=[
                    f"{name} pads to its {patch[0]}x{patch[1]} patches and resamples its position embedding"
                ],
            )
        return SizeRule(
            multiple_of=max(patch),
            notes=[
                f"{name} resamples its position embedding; H and W must be multiples of the {patch[0]}x{patch[1]} patch"
            ],
        )
    notes = [
        f"{name} was built for {img_size[0]}x{img_size[1]} ({img_size[0] // patch[0]}x{img_size[1] // patch[1]} patches of {patch[0]}x{patch[1]})"
    ]
    if callable(getattr(model, "set_input_size", None)):
        notes.append(
            "another size needs `model.set_input_size(img_size=(H, W))` or `dynamic_img_size=True` at creation"
        )
    return SizeRule(exact=img_size, notes=notes)


def _max_reduction(model: nn.Module) -> int | None:
    info = getattr(model, "feature_info", None)
    if not isinstance(info, list):
        return None
    reductions = [
        f.get("reduction") for f in info if isinstance(f, dict) and isinstance(f.get("reduction"), int)
    ]
    return max(reductions) if reductions else None


def _size_facts(rule: SizeRule | None) -> list[str]:
    if rule is None:
        return []
    facts = list(rule.notes)
    if rule.exact:
        facts.insert(0, f"the model accepts exactly {rule.exact[0]}x{rule.exact[1]} inputs")
    return facts


# -- adapt -----------------------------------------------------------------------------------------------


def _check_keep(keep: list[int] | None, num_classes: int, layers: list[tuple[str, nn.Module]]) -> list[int]:
    if keep is None:
        return []
    if not layers:
        raise UsageError(
            "`keep` needs a pretrained classifier to copy rows from, but this model has none "
            "(`num_classes` is 0 and the head is an `Identity`)"
        )
    return check_keep(keep, num_classes, out_width(layers[0][1])) or []


def _reset(model: nn.Module, num_classes: int, old_layers: list[tuple[str, nn.Module]]) -> str:
    """timm's ``reset_classifier``; if it does not cover the head (a user-replaced one), swap the layers."""
    try:
        model.reset_classifier(num_classes, **_reset_kwargs(model))
    except Exception:  # a user-replaced head can break timm's reset in any way
        _replace_layers(model, old_layers, num_classes)
        return "replaced"
    layers = classifier_layers(model)
    if layers and all(out_width(layer) == num_classes for _, layer in layers):
        return "reset_classifier"
    _replace_layers(model, layers or old_layers, num_classes)
    return "replaced"


def _reset_kwargs(model: nn.Module) -> dict[str, Any]:
    """RepViT's ``reset_classifier`` drops the distillation head unless told to keep it."""
    if "distillation" not in inspect.signature(model.reset_classifier).parameters:
        return {}
    return {"distillation": any(getattr(m, "distillation", False) is True for m in model.modules())}


def _replace_layers(model: nn.Module, layers: list[tuple[str, nn.Module]], num_classes: int) -> None:
    for path, layer in layers:
        set_module(model, path, new_layer_like(layer, num_classes))


def _match_old_layers(
    new_layers: list[tuple[str, nn.Module]], old: dict[str, nn.Module], model: nn.Module
) -> None:
    """New layers live on the old layer's device and dtype and train when the old one did."""
    for path, layer in new_layers:
        before = old.get(path)
        reference = before.weight if before is not None else next(model.parameters())
        if layer.weight.device != reference.device or layer.weight.dtype != reference.dtype:
            layer.to(device=reference.device, dtype=reference.dtype)
        layer.train(before.training if before is not None else model.training)
        layer.requires_grad_(True)


def _restore_outside(model: nn.Module, replaced: list[str], old_tensors: dict[str, torch.Tensor]) -> None:
    """Undo anything ``reset_classifier`` re-created outside the classifier layers (MetaFormer's MlpHead
    rebuilds fc1 and its norm with fc2): copy the old values back, so only the replaced layers differ."""
    inside = tuple(f"{p}." for p in replaced)
    new_tensors = dict(model.state_dict(keep_vars=True))
    with torch.no_grad():
        for key, tensor in new_tensors.items():
            old = old_tensors.get(key)
            if key.startswith(inside) or old is None or old is tensor or old.shape != tensor.shape:
                continue
            tensor.copy_(old)
            tensor.requires_grad_(old.requires_grad)


def _copy_kept_rows(
    new_layers: list[tuple[str, nn.Module]], old: dict[str, nn.Module], keep: list[int]
) -> None:
    """Row i of every new classifier starts from row keep[i] of the old one at the same path."""
    main = next(iter(old.values()))
    for path, layer in new_layers:
        source = old.get(path, main)
        if source.weight.shape[1:] == layer.weight.shape[1:]:
            copy_rows(layer, source, keep)


def _set_count_attributes(model: nn.Module, num_classes: int, replaced: list[str]) -> dict[str, int]:
    """``model.num_classes`` and the ``num_classes`` of every head module on the way to a classifier."""
    attributes: dict[str, int] = {}
    owners = {""} | {".".join(p.split(".")[:i]) for p in replaced for i in range(1, p.count(".") + 1)}
    for path in sorted(owners):
        module = model.get_submodule(path) if path else model
        if isinstance(getattr(module, "num_classes", None), int):
            module.num_classes = num_classes
            attributes[f"{path}.num_classes" if path else "num_classes"] = num_classes
    return attributes


def _adapt_notes(how: str, replaced: list[str], num_classes: int, old: int | None) -> list[str]:
    layers = ", ".join(f"`{module_name(p)}`" for p in replaced)
    was = f" (was {old})" if old else ""
    if how == "reset_classifier":
        first = f"timm's `reset_classifier({num_classes})` re-created {layers}: {num_classes} outputs for your {num_classes} classes{was}"
    else:
        first = f"timm's `reset_classifier` did not cover this head, so {layers} was replaced: {num_classes} outputs{was}"
    notes = [first]
    if len(replaced) > 1:
        notes.append(
            f"this model has {len(replaced)} classifier heads; all of them now emit {num_classes} classes"
        )
    return notes


# -- live evidence ---------------------------------------------------------------------------------------


def _head_facts(model: nn.Module) -> list[str]:
    facts = [f"`{module_name(path)}` is {_layer_text(layer)}" for path, layer in classifier_layers(model)]
    widths = [
        f"`{name}` is {getattr(model, name)}"
        for name in ("num_features", "head_hidden_size", "num_classes")
        if isinstance(getattr(model, name, None), int)
    ]
    if widths:
        facts.append("; ".join(widths))
    return facts


def _input_size_cause(model: nn.Module, diagnosis: Diagnosis) -> Cause | None:
    """timm's ``Input height (384) doesn't match model (224).``: the image size, not the head."""
    match = _INPUT_SIZE.search(diagnosis.message or "")
    if match is None:
        return None
    side, given, wanted = match.group(1), int(match.group(2)), int(match.group(3))
    img_size = _pair(getattr(getattr(model, "patch_embed", None), "img_size", None)) or (wanted, wanted)
    fix = f"resize inputs to {img_size[0]}x{img_size[1]}"
    if callable(getattr(model, "set_input_size", None)):
        fix += ", or `model.set_input_size(img_size=(H, W))` to resample the position embedding for H x W"
    summary = f"the input {side} is {given} but `patch_embed` was built for {wanted}"
    return Cause(summary, 0.9, "patch_embed", "img_size", fix)
