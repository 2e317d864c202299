"""HF124: tensors on different devices meet in one operation.

The message names the two devices and often the argument that is on the odd one (``mat1``, ``weight``,
``index``); the argument's role says which side was left behind. A layer's parameter (``weight``,
``bias``, F.linear's ``mat2``) on the CPU next to a CUDA input is a model that was never moved, or a layer
made after the move; an input (``input``, ``self``, ``mat1``) on the CPU is an input that was not moved,
or whose ``x.to(device)`` was never assigned (``Tensor.to`` returns a copy, unlike ``Module.to``). A
tensor the failing line reads as ``self.name`` that is neither a parameter nor a buffer is never moved
by ``model.to()`` at all: it must be registered as a buffer.
"""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.engine import rule
from headfit.explain.frames import shows, user_sources
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose

CODE = "HF124"

_TWO_DEVICES = re.compile(
    r"Expected all tensors to be on the same device, but (?:found at least two devices, (?P<a>[\w:]+) and "
    r"(?P<b>[\w:]+)|got (?P<arg>\w+) is on (?P<odd>[\w:]+), different from other tensors on (?P<common>[\w:]+))"
)
_CHECKING = re.compile(r"when checking (?:argument for )?argument (?:for argument )?(?P<arg>\w+)")
_EXPECTED_DEVICE = re.compile(
    r"Tensor on device (?P<odd>[\w:]+) is not on the expected device (?P<common>[\w:]+)"
)
PARAMETER_ARGS = ("weight", "bias", "mat2", "running_mean", "running_var")
INPUT_ARGS = ("input", "self", "mat1", "x", "tensors")
LABEL_ARGS = ("target", "index", "indices")
# `self.name` used as a tensor: in arithmetic, indexed, or with a tensor method (not passed on as an argument)
_SELF_TENSOR = re.compile(
    r"[-+*/@]\s*self\.(?P<a>[a-z_]\w*)\b(?![.(])|\bself\.(?P<b>[a-z_]\w*)\s*(?:[-+*/@](?!=)|\[)"
    r"|\bself\.(?P<c>[a-z_]\w*)\.(?:gather|index_select|view|reshape|expand|repeat|unsqueeze|mm|matmul|"
    r"masked_fill|type_as|mul|add|sub|div)\("
)
# the failing call is the model's first layer (a model never moved fails there) or its head (replaced late)
_STEM_CALL = re.compile(r"self\.(?:conv_?0|conv1|stem\w*|conv_stem|patch_embed|embed\w*|features)\(")
_HEAD_CALL = re.compile(r"self\.(?:fc|head|classifier|cls\w*|box_predictor|last_linear|logits)\w*\(")
_OWN_WEIGHT = re.compile(r"F\.(?:conv\dd|linear|conv_transpose\dd)\([^)]*self\.weight")
_MODULE_NAMES = re.compile(
    r"^(?:weight$|bias$|running_|conv|fc|bn|layer|linear|lstm|gru|rnn|head|classifier|backbone|encoder|decoder|model|net|module|training|device)"
)
TELL_APART = (
    "to see which side stayed behind: {n: p.device for n, p in model.named_parameters()} and x.device; a plain "
    "tensor attribute (`self.t = torch.tensor(...)`) is in neither named_parameters() nor named_buffers(), so "
    "model.to(device) never moves it"
)


@rule(
    CODE,
    priority=60,
    needs=("Expected all tensors to be on the same device", "is not on the expected device"),
)
def device_mismatch(parsed: ParsedError) -> Diagnosis | None:
    m = _TWO_DEVICES.search(parsed.message)
    if m and m["arg"]:
        return device_diagnosis(parsed, m["common"], m["odd"], argument=m["arg"], odd_first=True)
    if m:
        checking = _CHECKING.search(parsed.message)
        return device_diagnosis(parsed, m["a"], m["b"], argument=checking["arg"] if checking else None)
    m = _EXPECTED_DEVICE.search(parsed.message)
    if m:
        return device_diagnosis(parsed, m["common"], m["odd"])
    return None


def device_diagnosis(
    parsed: ParsedError,
    common: str,
    odd: str,
    *,
    argument: str | None = None,
    input_device: str | None = None,
    odd_first: bool = False,
) -> Diagnosis:
    """``common``: where the operation (or most of its tensors) is; ``odd``: where ``argument`` is.
    ``input_device``: the input's device, when the message says it (``Input type (...) and weight type``);
    ``odd_first``: the message names the odd device first."""
    first, second = (odd, common) if odd_first else (common, odd)
    facts = [
        f"one operand is on `{first}`, another on `{second}`"
        + (f" (`{argument}` is on `{odd}`)" if argument else "")
    ]
    if input_device is not None:
        facts.append(
            f"the input is on `{input_device}`, the layer's weights on `{odd if input_device == common else common}`"
        )
    if "meta" in (common, odd):
        facts.append(
            "`meta` tensors have shapes but no data: a model on the meta device needs meta inputs (or `model.to_empty(device=...)`)"
        )
    attribute = _tensor_attribute(parsed)
    if attribute:
        facts.append(f"the failing line reads `self.{attribute}` as a tensor")
    facts.append(TELL_APART)
    weights_left = _weights_left_behind(common, odd, argument, input_device)
    causes = _causes(parsed, weights_left, attribute, argument)
    return diagnose(CODE, parsed, f"tensors on `{common}` and `{odd}` meet in one operation", facts, causes)


def _weights_left_behind(
    common: str, odd: str, argument: str | None, input_device: str | None
) -> bool | None:
    """True: the layer's parameters are on the CPU while the data is on the GPU; False: the data was left
    behind; None: the message does not say which."""
    if input_device is not None:
        return input_device != "cpu"
    if argument in PARAMETER_ARGS:
        return odd == "cpu"
    if argument in INPUT_ARGS:
        return odd != "cpu"
    return None


def _causes(
    parsed: ParsedError, weights_left: bool | None, attribute: str | None, argument: str | None
) -> list[Cause]:
    never_moved = Cause(
        "the model was never moved to the GPU (or was rebuilt or reloaded after the move)",
        0.55,
        fix="model = model.to(device)  # once, after building (and re-heading) it, before the optimizer",
    )
    made_after = Cause(
        "a layer was created after `model.to(device)` (a replaced head) or inside `forward`: it lives on the CPU",
        0.45,
        fix="model.to(device)  # again, after replacing the head; build layers in __init__, never in forward",
    )
    plain = Cause(
        f"`self.{attribute or 'name'}` is a plain tensor attribute: `model.to(device)` moves parameters and buffers only",
        0.8 if attribute else 0.3,
        fix=f"self.register_buffer('{attribute or 'name'}', tensor)  # in __init__, instead of self.{attribute or 'name'} = tensor",
    )
    inputs = Cause(
        "the inputs or targets were not moved to the model's device",
        0.6,
        fix="device = next(model.parameters()).device; x, target = x.to(device), target.to(device)",
    )
    unassigned = Cause(
        "`x.to(device)` (or `x.cuda()`) was called without assigning it: Tensor.to returns a moved copy and leaves x "
        "where it was (unlike Module.to)",
        0.4 if _unassigned_move(parsed) else 0.3,
        fix="x = x.to(device)",
    )
    sources = user_sources(parsed)
    if any(_HEAD_CALL.search(s) or _OWN_WEIGHT.search(s) for s in sources):
        made_after.confidence = 0.65
    elif any(_STEM_CALL.search(s) for s in sources):
        never_moved.confidence = 0.7
    if weights_left is True:
        causes = [never_moved, made_after, plain]
    elif weights_left is False:
        causes = [inputs, unassigned, plain]
    else:
        causes = [inputs, never_moved, made_after, plain, unassigned]
    if argument in ("target", "weight") and _in_loss(parsed):
        causes.insert(
            0,
            Cause(
                "the loss's class weights (or the targets) were made on the CPU: a loss module is not part of the model",
                0.7,
                fix="criterion = nn.CrossEntropyLoss(weight=class_weights.to(device))  # or criterion.to(device)",
            ),
        )
    loss_frame = _own_loss_frame(parsed)
    if weights_left is True and loss_frame is not None:
        causes.insert(
            0,
            Cause(
                f"a loss with its own parameters (`{loss_frame}`) is not part of the model: model.to(device) never moves it",
                0.75,
                fix="criterion = criterion.to(device)  # or register it as a submodule of the model",
            ),
        )
    if shows(parsed, "summary_tool"):
        causes.insert(
            0,
            Cause(
                "the summary tool builds its dummy input on its own default device (torchsummary: cuda)",
                0.8,
                fix='summary(model, input_size, device="cpu")  # the device the model is on',
            ),
        )
    return causes


def _tensor_attribute(parsed: ParsedError) -> str | None:
    """The ``self.name`` the failing lines read as a tensor (``self.alpha.gather``, ``x - self.mean``): the
    innermost user line, or code pasted with the message."""
    lines = user_sources(parsed)[:1] or [parsed.message]
    for line in lines:
        for m in _SELF_TENSOR.finditer(line):
            name = m["a"] or m["b"] or m["c"]
            if not _MODULE_NAMES.match(name) and not re.search(rf"self\.{name}\s*\(", line):
                return name
    return None


def _own_loss_frame(parsed: ParsedError) -> str | None:
    """The user's loss class whose own weight is on the CPU (ArcFace/circle-loss heads), read from a frame
    in a file named like a loss that computes with ``self.weight``."""
    for frame in reversed(parsed.frames):
        path = frame.file.replace("\\", "/").rsplit("/", 1)[-1]
        if not frame.library and "loss" in path.lower() and frame.source and "self.weight" in frame.source:
            return f"{path}: {frame.function}"
    return None


def _unassigned_move(parsed: ParsedError) -> bool:
    return any(re.match(r"^\s*[\w.\[\]]+\.(?:to\(|cuda\(\))", line) for line in user_sources(parsed))


def _in_loss(parsed: ParsedError) -> bool:
    return any(
        (f.library_file or "").endswith(("nn/functional.py", "nn/modules/loss.py")) for f in parsed.frames
    ) or ("nll_loss" in parsed.message or "cross_entropy" in parsed.message)
