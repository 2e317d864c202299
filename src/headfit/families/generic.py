"""The fallback family: any ``nn.Module`` no other family claims, read by structure alone.

The classifier is the layer that produces the output: the last Linear or convolution in registration
order, preferring one whose path says so (``fc``, ``head``, ``classifier``, ``cls``, ``logits``), or the
layer the user names with ``head="path"``. Lint checks only what the structure proves: widths that do
not chain inside an ``nn.Sequential``, a classifier whose input width differs from the width that
visibly reaches it, and ``num_classes`` attributes that disagree with the classifier.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from headfit.diagnosis import Problem
from headfit.errors import UsageError
from headfit.families._util import (
    check_keep,
    check_num_classes,
    copy_rows,
    has_module,
    new_layer_like,
    set_module,
)
from headfit.families.base import AdaptSummary, Family, HeadInfo, SizeRule, register_family
from headfit.inputs import InputSpec
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import in_width, is_class_layer, layer_code, norm_width, out_width

_HEAD_WORDS = {"fc", "head", "classifier", "cls", "logits", "last_linear"}
_COUNT_ATTRIBUTES = ("num_classes", "n_classes")
_SPLIT = re.compile(r"[._]")


@register_family
class GenericFamily(Family):
    name = "generic"
    priority = 1000
    adapt_options = ("keep", "head")  # head: the path of the layer to replace, when headfit's guess is wrong
    examples = ("examples/small_cnn.py:SmallCNN",)

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        return True

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        found = find_classifier(model)
        if found is None:
            return []
        path, layer = found
        return [HeadInfo(path, "classifier", out_width(layer), _count_attributes(model, path))]

    def num_classes(self, model: nn.Module) -> int | None:
        found = find_classifier(model)
        return out_width(found[1]) if found else None

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        problems = _chain_problems(model)
        found = find_classifier(model)
        if found is not None:
            flagged = {p.module for p in problems}
            width = None if found[0] in flagged else _width_problem(model, *found)
            problems.extend([width] if width else [])
            problems.extend(_attribute_problems(model, *found))
        return problems

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        """2x3x224x224 for an RGB conv net, 2xF for an MLP, 2x16 token ids for an Embedding first."""
        first = next((m for m in model.modules() if _is_input_layer(m)), None)
        if isinstance(first, nn.Linear):
            return [InputSpec.batch(2, first.in_features)]
        if isinstance(first, nn.Embedding):
            return [InputSpec.batch(2, 16, dtype="int64")]
        if isinstance(first, nn.Conv1d):
            return [InputSpec.batch(2, first.in_channels, 224)]
        if isinstance(first, nn.Conv3d):
            return [InputSpec.batch(2, first.in_channels, 16, 112, 112)]
        channels = first.in_channels if isinstance(first, nn.Conv2d) else 3
        return [InputSpec.batch(2, channels, 224, 224)]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        """The downsampling factor read from strides; U-Net-like models need multiples of it."""
        factor = _downsampling(model)
        if factor <= 1:
            return None
        if _upsamples(model):
            note = f"the input is downsampled {factor}x and upsampled again: skip connections line up only at multiples of {factor}"
            return SizeRule(multiple_of=factor, notes=[note])
        return SizeRule(minimum=factor, notes=[f"the strides and pools downsample the input {factor}x"])

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """Replace the classifier layer (or the one named by ``head``) with one for ``num_classes``."""
        options = self.checked_options(options)
        check_num_classes(num_classes)
        path, old = _classifier_or_raise(model, options.get("head"))
        rows = check_keep(options.get("keep"), num_classes, out_width(old)) or []
        new = new_layer_like(old, num_classes)
        if rows:
            copy_rows(new, old, rows)
        set_module(model, path, new)
        attributes = _set_count_attributes(model, path, out_width(old), num_classes)
        note = f"replaced `{module_name(path)}` ({_layer_text(old)}) with {_layer_text(new)}: {num_classes} outputs for your {num_classes} classes"
        return AdaptSummary(
            self.name, num_classes, self.outputs_for(num_classes), [path], attributes, [note], rows
        )

    # -- training --------------------------------------------------------------------------------------

    # -- live evidence ---------------------------------------------------------------------------------

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        return _module_facts(model, module_path)


# -- finding the classifier ------------------------------------------------------------------------------


def find_classifier(model: nn.Module, head: str | None = None) -> tuple[str, nn.Module] | None:
    """The layer that produces the classes: ``head`` if given, else by name and registration order."""
    if head is not None:
        if not has_module(model, head):
            return None
        module = model.get_submodule(head) if head else model
        if is_class_layer(module):
            return head, module
        inner = [
            (f"{head}.{p}" if head else p, m) for p, m in module.named_modules() if p and is_class_layer(m)
        ]
        return inner[-1] if inner else None
    layers = candidates(model)
    named = [(p, m) for p, m in layers if _HEAD_WORDS & set(_SPLIT.split(p))]
    return (named or layers or [None])[-1]


def candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear and convolution, in registration order: what ``head=`` may name."""
    return [(p, m) for p, m in model.named_modules() if p and is_class_layer(m)]


def _classifier_or_raise(model: nn.Module, head: str | None) -> tuple[str, nn.Module]:
    found = find_classifier(model, head)
    if found is not None:
        return found
    listing = ", ".join(f"`{p}` ({_layer_text(m)})" for p, m in candidates(model)[-8:]) or "none"  # --head paths
    what = (
        f"`head={head!r}` names no Linear or convolution in"
        if head is not None
        else "headfit found no classifier layer in"
    )
    raise UsageError(
        f'{what} `{type(model).__name__}`. Name the layer that produces the classes with `head="path"` '
        f"(`--head path` on the command line); the last Linear/convolution layers are: {listing}."
    )


def _is_input_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd))


def _layer_text(layer: nn.Module) -> str:
    return f"{type(layer).__name__}({in_width(layer)}, {out_width(layer)})"


# -- lint ------------------------------------------------------------------------------------------------


def _chain_problems(model: nn.Module) -> list[Problem]:
    """HF233: inside an ``nn.Sequential``, each layer must take the width the layer before it produces."""
    problems = []
    for path, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            problems.extend(_sequential_breaks(path, module))
    return problems


def _sequential_breaks(path: str, seq: nn.Module) -> list[Problem]:
    problems = []
    width, source = None, None
    for name, child in seq.named_children():
        child_path = f"{path}.{name}" if path else name
        if _keeps_width(child):
            continue
        wanted = in_width(child)
        if wanted is None:
            width, source = None, None
            continue
        if width is not None and wanted != width:
            problems.append(_chain_problem(child_path, child, source, width))
        width, source = (out_width(child), child_path) if norm_width(child) is None else (width, source)
    return problems


def _keeps_width(module: nn.Module) -> bool:
    """Layers that pass the width through: activations, dropout, identity."""
    return (
        isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd))
        or type(module).__module__ == "torch.nn.modules.activation"
    )


def _chain_problem(path: str, layer: nn.Module, source: str, width: int) -> Problem:
    attribute = _in_attribute(layer)
    fix = f"{module_expr('model', path)} = {_rebuilt(layer, width)}"
    return Problem(
        code="HF233",
        module=path,
        attribute=attribute,
        summary=f"`{module_name(path)}` expects {in_width(layer)} {_unit(layer)} but `{module_name(source)}` before it produces {width}",
        facts=[f"`{module_name(source)}` produces {width} {_unit(layer)}", f"`{module_name(path)}` is {_describe(layer)}"],
        fix=fix,
    )


def _width_problem(model: nn.Module, path: str, layer: nn.Module) -> Problem | None:
    """HF234: the classifier's input width against the width that visibly reaches it."""
    reaching = _width_reaching(model, path)
    if reaching is None or reaching[1] == in_width(layer):
        return None
    source, width = reaching
    return Problem(
        code="HF234",
        module=path,
        attribute=_in_attribute(layer),
        summary=f"the classifier `{module_name(path)}` takes {in_width(layer)} {_unit(layer)} but `{module_name(source)}` produces {width}",
        facts=[f"`{module_name(path)}` is {_describe(layer)}", f"the last layer before it, `{module_name(source)}`, produces {width}"],
        fix=f"{module_expr('model', path)} = {layer_code(layer, width, out_width(layer))}",
    )


def _width_reaching(model: nn.Module, path: str) -> tuple[str, int] | None:
    """The width entering ``path``, read from its earlier siblings when the structure proves it.

    Walking back: activations, dropout and pooling keep the width; a ``Flatten`` keeps it only after a
    global pool (to 1x1); a layer or an ``nn.Sequential`` of layers gives it; anything else (a custom
    block that may concatenate branches) means headfit cannot tell. Outside an ``nn.Sequential`` a
    sibling Linear/conv may be a parallel head (``cls_score`` next to ``bbox_pred``), so only an
    ``nn.Sequential`` trunk or a norm layer counts there; ModuleList items are parallel by design.
    """
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    if isinstance(parent, nn.ModuleList | nn.ModuleDict):
        return None
    in_order = isinstance(parent, nn.Sequential)
    children = list(parent.named_children())
    index = next(i for i, (n, _) in enumerate(children) if n == name)
    flattened = False
    for sibling, module in reversed(children[:index]):
        sibling_path = f"{parent_path}.{sibling}" if parent_path else sibling
        if isinstance(module, nn.Flatten):
            flattened = True
        elif _is_global_pool(module):
            flattened = False
        elif _keeps_width(module) or isinstance(
            module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd
        ):
            continue
        elif in_order or isinstance(module, nn.Sequential) or norm_width(module) is not None:
            found = _last_layer(module, sibling_path)
            return None if found is None or flattened else found
        else:
            return None
    return None


def _last_layer(module: nn.Module, path: str) -> tuple[str, int] | None:
    if in_width(module) is not None:
        return path, out_width(module)
    if not isinstance(module, nn.Sequential):
        return None
    for name, child in reversed(list(module.named_children())):
        if _keeps_width(child) or isinstance(
            child, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd
        ):
            continue
        return _last_layer(child, f"{path}.{name}")
    return None


def _is_global_pool(module: nn.Module) -> bool:
    size = getattr(module, "output_size", None)
    adaptive = isinstance(
        module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd
    )
    return adaptive and all(s == 1 for s in (size if isinstance(size, tuple) else (size,)))


def _attribute_problems(model: nn.Module, path: str, layer: nn.Module) -> list[Problem]:
    """HF235: ``num_classes`` attributes of the model (or of modules around the head) that disagree."""
    out = out_width(layer)
    problems = []
    for attribute, value in _count_attributes(model, path).items():
        if value == out:
            continue
        owner, _, name = attribute.rpartition(".")
        problems.append(
            Problem(
                code="HF235",
                module=owner,
                attribute=name,
                summary=f"`{attribute}` says {value} but the classifier `{module_name(path)}` emits {out} classes",
                facts=[f"`{module_name(path)}` is {_describe(layer)}", f"`{attribute}` is {value}"],
                fix=f"{module_expr('model', owner)}.{name} = {out}",
            )
        )
    return problems


def _count_attributes(model: nn.Module, path: str) -> dict[str, int]:
    """Class-count attributes of the model and of the modules on the way to the head."""
    found = {}
    for owner in _ancestors(path):
        module = model.get_submodule(owner) if owner else model
        for name in _COUNT_ATTRIBUTES:
            value = getattr(module, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                found[f"{owner}.{name}" if owner else name] = value
    return found


def _ancestors(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts))]


def _in_attribute(layer: nn.Module) -> str:
    return "in_features" if hasattr(layer, "in_features") else "in_channels"


def _unit(layer: nn.Module) -> str:
    return "features" if isinstance(layer, nn.Linear | nn.LayerNorm | nn.BatchNorm1d) else "channels"


def _describe(layer: nn.Module) -> str:
    width = norm_width(layer)
    if width is not None:
        return f"`{type(layer).__name__}({width})`"
    return f"`{_layer_text(layer)}`"


def _rebuilt(layer: nn.Module, width: int) -> str:
    """Code for ``layer`` taking ``width`` inputs: a Linear/conv keeps its outputs, a norm takes the width."""
    if norm_width(layer) is not None:
        return f"nn.{type(layer).__name__}({width})"
    return layer_code(layer, width, out_width(layer))


# -- sizes -----------------------------------------------------------------------------------------------


def _downsampling(model: nn.Module) -> int:
    """Product of the strides of pools and strided convolutions, skipping residual shortcuts."""
    factor = 1
    for path, module in model.named_modules():
        if any(word in path for word in ("downsample", "shortcut", "skip")):
            continue
        if isinstance(module, nn.modules.conv._ConvNd) and not isinstance(
            module, nn.modules.conv._ConvTransposeNd
        ):
            factor *= _first(module.stride)
        elif isinstance(module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
            factor *= _first(module.stride or module.kernel_size)
    return factor


def _upsamples(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Upsample | nn.modules.conv._ConvTransposeNd) for m in model.modules())


def _first(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


# -- adapt -----------------------------------------------------------------------------------------------


def _set_count_attributes(model: nn.Module, path: str, old: int, num_classes: int) -> dict[str, int]:
    """Set every class-count attribute around the head that agreed with the old classifier."""
    changed = {}
    for attribute, value in _count_attributes(model, path).items():
        if value != old:
            continue
        owner, _, name = attribute.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, name, num_classes)
        changed[attribute] = num_classes
    return changed


# -- live evidence ---------------------------------------------------------------------------------------


def _module_facts(model: nn.Module, module_path: str) -> list[str]:
    if not has_module(model, module_path):
        return []
    module = model.get_submodule(module_path) if module_path else model
    name = f"`{module_name(module_path) if module_path else type(model).__name__}`"
    facts = []
    if in_width(module) is not None:
        facts.append(f"{name} is {_describe(module)}: it expects {in_width(module)} {_unit(module)}")
    for attribute in ("kernel_size", "stride", "padding", "groups", "num_classes", "n_classes"):
        value = getattr(module, attribute, None)
        if isinstance(value, int | tuple) and not isinstance(value, bool):
            facts.append(f"{name}.`{attribute}` is {value}")
    return facts
