"""HF123 dtype mismatches (labels as float, Half vs Float, float64 from numpy). The messages that also
name devices (``Input type (torch.cuda.FloatTensor) and weight type (torch.FloatTensor)``) go to
``device.py`` (HF124) when only the devices differ."""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, dtype_name
from headfit.explain.rules.device import device_diagnosis

INTEGER = ("int64", "int32", "int16", "int8", "uint8", "bool")
REDUCED = ("float16", "bfloat16")

_EXPECTED_FOUND = re.compile(r"expected scalar type (\w+) but found (\w+)")
# torch < 1.6: "Expected object of scalar type Long but got scalar type Float for argument #2 'target' in call
# to _thnn_nll_loss_forward"; torch < 1.0: "Expected object of type torch.FloatTensor but found type
# torch.LongTensor for argument #2 'target'" (pasted with any capitalisation)
_OLD_EXPECTED_OBJECT = re.compile(
    r"Expected object of (?:scalar )?type ([\w.]+) but (?:got|found) (?:scalar )?type ([\w.]+)"
    r"(?: for argument #\d+ '\s*(\w+)')?",
    re.IGNORECASE,
)
# torch < 1.5 (cudnn): "Expected tensor for argument #1 'grad_output' to have the same type as tensor for
# argument #2 'weight'; but type torch.cuda.HalfTensor does not equal torch.cuda.FloatTensor"
_SAME_TYPE_AS = re.compile(
    r"to have the same type as tensor for argument #\d+ '(\w+)'; but type ([\w.]+) does not equal ([\w.]+)"
)
_SAME_DTYPE = re.compile(r"expected m1 and m2 to have the same dtype, but got: ([\w:]+) != ([\w:]+)")
_MAT_DTYPE = re.compile(r"mat1 and mat2 must have the same dtype, but got (\w+) and (\w+)")
_FOUND_EXPECTED = re.compile(r"Found dtype (\w+) but expected (\w+)")
_TARGET_DTYPE = re.compile(r"expected target dtype to be Long or Byte, but got (\w+)")
_INDEX_KERNEL = re.compile(r"nll_loss|cross_entropy|index|embedding|gather|scatter|one_hot|bincount")
_NOT_IMPLEMENTED = re.compile(r"\"(\w+)\" not implemented for '(\w+)'")
_INDICES = re.compile(
    r"(?:argument #\d+ 'indices' to have one of the following scalar types: Long, Int; but got (torch\.\w+)|tensors used as indices must be long, int, byte or bool tensors)"
)
_INPUT_WEIGHT = re.compile(
    r"Input type \(([\w.:]+)\) and (weight|bias) type \(([\w.:]+)\) should be the same"
)


# --- HF123 ---------------------------------------------------------------------------------------


@rule("HF123", priority=60, needs=("expected scalar type ", "expected target dtype to be Long or Byte"))
def expected_scalar_type(parsed: ParsedError) -> Diagnosis | None:
    m = _EXPECTED_FOUND.search(parsed.message) or _TARGET_DTYPE.search(parsed.message)
    if not m:
        return None
    if m.re is _TARGET_DTYPE:
        expected, found = "int64", dtype_name(m[1])
    else:
        expected, found = dtype_name(m[1]), dtype_name(m[2])
    return _dtype_diagnosis(parsed, expected, found)


@rule("HF123", priority=60, needs="Expected object of ")
def expected_object_of_type(parsed: ParsedError) -> Diagnosis | None:
    m = _OLD_EXPECTED_OBJECT.search(parsed.message)
    if not m:
        return None
    expected, found, argument = dtype_name(m[1]), dtype_name(m[2]), m[3]
    if expected == found and _device_of(m[1]) != _device_of(m[2]):  # torch 0.4: the same dtype on two devices
        return device_diagnosis(
            parsed, _device_of(m[1]) or "cpu", _device_of(m[2]) or "cpu", argument=argument
        )
    if argument in ("index", "indices"):
        return _index_diagnosis(parsed, found, argument)
    return _dtype_diagnosis(parsed, expected, found)


@rule("HF123", priority=60, needs="to have the same type as tensor for argument")
def same_type_as_argument(parsed: ParsedError) -> Diagnosis | None:
    m = _SAME_TYPE_AS.search(parsed.message)
    if not m:
        return None
    # the first tensor's type, then the other's (e.g. the weight): the second is the one to match
    return _dtype_diagnosis(parsed, dtype_name(m[3]), dtype_name(m[2]))


@rule("HF123", priority=60, needs=("to have the same dtype", "must have the same dtype"))
def operands_dtype(parsed: ParsedError) -> Diagnosis | None:
    m = _SAME_DTYPE.search(parsed.message) or _MAT_DTYPE.search(parsed.message)
    if not m:
        return None
    # m1/mat1 is the input, m2/mat2 the weight: the weight's dtype is the one to match
    return _dtype_diagnosis(parsed, dtype_name(m[2]), dtype_name(m[1]))


@rule("HF123", priority=60, needs="Found dtype ")
def loss_target_dtype(parsed: ParsedError) -> Diagnosis | None:
    m = _FOUND_EXPECTED.search(parsed.message)
    if not m:
        return None
    return _dtype_diagnosis(parsed, dtype_name(m[2]), dtype_name(m[1]))


@rule("HF123", priority=60, needs="\" not implemented for '")
def not_implemented_for_dtype(parsed: ParsedError) -> Diagnosis | None:
    m = _NOT_IMPLEMENTED.search(parsed.message)
    if not m:
        return None
    kernel, dtype = m[1], dtype_name(m[2])
    facts = [f"the kernel `{kernel}` has no {dtype} implementation on this device"]
    if dtype in REDUCED:
        causes = [
            Cause(
                f"a {dtype} model or input runs on the CPU, where many kernels are float32 only",
                0.7,
                fix="model.float(); x = x.float()  # or run on the GPU: model.cuda(); x = x.cuda()",
            ),
            Cause(
                "mixed precision done by hand: let autocast pick the dtype per op",
                0.4,
                fix="with torch.autocast(device_type='cuda', dtype=torch.float16): out = model(x)",
            ),
        ]
    elif dtype.startswith("float") and _INDEX_KERNEL.search(kernel):
        facts.append(f"`{kernel}` reads class indices or positions: they must be integers")
        causes = [
            Cause(
                f"the targets (class indices) or indices are {dtype}: cross-entropy / NLL, embedding and gather take int64",
                0.8,
                fix="loss = F.cross_entropy(logits, target.long())  # or idx.long()",
            )
        ]
    else:
        causes = [
            Cause(f"a {dtype} tensor reached an op that needs floating point", 0.6, fix="x = x.float()")
        ]
    return diagnose("HF123", parsed, f"`{kernel}` is not implemented for {dtype}", facts, causes)


@rule(
    "HF123",
    priority=60,
    needs=("'indices' to have one of the following scalar types", "tensors used as indices must be"),
)
def index_dtype(parsed: ParsedError) -> Diagnosis | None:
    m = _INDICES.search(parsed.message)
    if not m:
        return None
    return _index_diagnosis(parsed, dtype_name(m[1]) if m[1] else "a floating dtype")


def _index_diagnosis(parsed: ParsedError, found: str, argument: str = "indices") -> Diagnosis:
    return diagnose(
        "HF123",
        parsed,
        f"indices must be integers, got {found}",
        [
            f"embedding ids and tensor indices (`{argument}` of gather/scatter/index_select) must be int64/int32 (or bool masks)"
        ],
        [
            Cause(
                "ids or labels were built as floats (e.g. from numpy or torch.tensor of floats)",
                0.75,
                fix=f"{argument} = {argument}.long()",
            )
        ],
    )


def _dtype_diagnosis(parsed: ParsedError, expected: str, found: str) -> Diagnosis:
    facts = [f"expected {expected}, found {found}"]
    return diagnose(
        "HF123", parsed, f"expected dtype {expected} but found {found}", facts, _dtype_causes(expected, found)
    )


def _dtype_causes(expected: str, found: str) -> list[Cause]:
    if expected == "int64":
        return [
            Cause(
                f"class labels are {found} ({'e.g. built from a float array' if found.startswith('float') else 'not int64'})"
                " but cross-entropy / NLL take int64 indices",
                0.75,
                fix="loss = F.cross_entropy(logits, target.long())",
            ),
            Cause(
                "another integer tensor (indices, ids, a batch vector) was built as float",
                0.3,
                fix="idx = idx.long()  # e.g. torch.tensor(values, dtype=torch.long)",
            ),
        ]
    if found in INTEGER:
        return [
            Cause(
                f"{found} targets or inputs where {expected} is needed (BCE/MSE targets, or raw integer pixels into a layer)",
                0.7,
                fix=f"target = target.to(torch.{expected})  # e.g. F.binary_cross_entropy_with_logits(logits, target.float())",
            )
        ]
    if expected in REDUCED or found in REDUCED:
        return [
            Cause(
                "part of the computation is half precision and part float32 (a model.half() with float inputs, or the reverse)",
                0.6,
                fix="with torch.autocast(device_type='cuda', dtype=torch.float16): out = model(x)",
            ),
            Cause(
                f"the input's dtype differs from the weights' ({expected})",
                0.5,
                fix=f"x = x.to(torch.{expected})  # or x.to(next(model.parameters()).dtype)",
            ),
        ]
    if "float64" in (expected, found):
        return [
            Cause(
                "float64 data (numpy arrays default to float64) meets float32 weights",
                0.7,
                fix="x = torch.from_numpy(array).float()  # or x = x.to(torch.float32)",
            )
        ]
    return [Cause(f"a {found} tensor where {expected} is needed", 0.5, fix=f"x = x.to(torch.{expected})")]


@rule("HF123", priority=60, needs="Input type (")
def input_weight_dtype(parsed: ParsedError) -> Diagnosis | None:
    """``Input type (X) and weight type (Y)``: HF123 when the dtypes differ, HF124 when only the devices do."""
    m = _INPUT_WEIGHT.search(parsed.message)
    if not m:
        return None
    input_dtype, weight_dtype = dtype_name(m[1]), dtype_name(m[3])
    input_device, weight_device = _device_of(m[1]), _device_of(m[3])
    if input_device != weight_device and input_device and weight_device:
        return device_diagnosis(
            parsed, weight_device, input_device, argument="input", input_device=input_device, odd_first=True
        )
    if input_dtype == weight_dtype:
        return None
    return _dtype_diagnosis(parsed, weight_dtype, input_dtype)


def _device_of(type_text: str) -> str | None:
    """'torch.cuda.HalfTensor' -> 'cuda', 'torch.FloatTensor' -> 'cpu', 'c10::Half' -> None (not said)."""
    if type_text.startswith("torch.cuda."):
        return "cuda"
    if type_text.startswith("torch.") and type_text.endswith("Tensor"):
        return "cpu"
    return None
