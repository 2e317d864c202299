"""Helpers shared by the rule modules of the tensor, loss, norm, detection, ViT, einops, dtype and device
families (HF108-HF124): building a diagnosis, reading frames, and the shape arithmetic they share.

No torch here: ``explain`` must not import it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints
from headfit.explain.build import make_diagnosis
from headfit.explain.parse import ParsedError


def diagnose(
    code: str, parsed: ParsedError, summary: str, facts: list[str], causes: list[Cause]
) -> Diagnosis:
    """A diagnosis of ``parsed`` under ``code`` (the catalogue gives the category, the traceback the
    location)."""
    return make_diagnosis(parsed, code, summary, facts, causes)


def frames_mention(parsed: ParsedError, *needles: str) -> bool:
    """True when a frame's file or function contains one of ``needles`` (e.g. ``"roi_heads.py"``)."""
    for frame in parsed.frames:
        where = f"{frame.file.replace(chr(92), '/')} {frame.function or ''}"
        if any(needle in where for needle in needles):
            return True
    return False


def size_list(text: str) -> list[int]:
    """'torch.Size([16, 1])' / '[3, 224, 224]' -> [16, 1] / [3, 224, 224]."""
    return parse_ints(text)


def ratio_fact(big: int, small: int) -> str | None:
    """'577 = 2.93 x 197' style fact, or None when a side is 0; exact multiples read '56 = 2 x 28'."""
    if small <= 0 or big <= 0:
        return None
    if big % small == 0:
        return f"{big} = {big // small} x {small}"
    return f"{big} / {small} = {big / small:.3g} (not a whole multiple)"


_DTYPES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "bfloat16": "bfloat16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "char": "int8",
    "byte": "uint8",
    "bool": "bool",
    "complexfloat": "complex64",
    "complexdouble": "complex128",
}


def dtype_name(text: str) -> str:
    """torch's spellings of a dtype ('Float', 'c10::Half', 'torch.cuda.HalfTensor', 'CUDAHalfTensor', 'double')
    -> 'float16' etc."""
    word = text.strip().removeprefix("c10::").removeprefix("torch.").removeprefix("cuda.")
    word = re.sub(r"^CUDA(?=[A-Z])", "", word)  # torch < 0.4: CUDAFloatTensor
    word = word.removesuffix("Tensor").lower()
    if (
        word.startswith("float")
        and word[5:].isdigit()
        or word.startswith(("int", "uint"))
        and word[-1].isdigit()
    ):
        return word
    return _DTYPES.get(word, word)


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def nearest_multiples(n: int, step: int) -> tuple[int, int]:
    """The multiples of ``step`` just below and above ``n`` (the lower one is at least ``step``)."""
    lower = max(step, n // step * step)
    upper = -(-n // step) * step
    return lower, max(upper, step)


def token_grid(tokens: int, prefix: int = 1) -> int | None:
    """The side of the square patch grid when ``tokens = side**2 + prefix`` (ViT class token), else None."""
    patches = tokens - prefix
    if patches < 4:
        return None
    side = math.isqrt(patches)
    return side if side * side == patches else None


@dataclass(frozen=True)
class Broadcast:
    """A failed broadcast: sizes ``a`` and ``b`` at ``dim`` (counted from the front), full shapes if known."""

    a: int
    b: int
    dim: int | None
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None


_CPU_BROADCAST = re.compile(
    r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)"
)
# the meta device (``headfit check`` traces there) words it differently and gives both shapes
_META_BROADCAST = re.compile(
    r"Attempting to broadcast a dimension of length (\d+) at (-?\d+)! Mismatching argument at index \d+ "
    r"had torch\.Size\(\[([\d, ]*)\]\); but expected shape should be broadcastable to \[([\d, ]*)\]"
)


def parse_broadcast(message: str) -> Broadcast | None:
    """Read either wording of a broadcasting failure."""
    m = _CPU_BROADCAST.search(message)
    if m:
        return Broadcast(int(m[1]), int(m[2]), int(m[3]))
    m = _META_BROADCAST.search(message)
    if not m:
        return None
    length, from_end = int(m[1]), int(m[2])
    arg_shape, expected = parse_ints(m[3]), parse_ints(m[4])
    index = len(expected) + from_end if from_end < 0 else from_end
    if not 0 <= index < len(expected):
        return None
    return Broadcast(expected[index], length, index, expected, arg_shape)
