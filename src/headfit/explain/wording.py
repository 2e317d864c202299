"""One wording per error kind: the rules read the modern torch message, whatever release printed it.

torch has worded most shape errors three or four ways since 0.3 (TH's ``invalid argument 2: size
'[-1 x 400]' is invalid for input with 1296 elements at .../THStorage.c:84`` is today's ``shape '[-1,
400]' is invalid for input of size 1296``), and pastes add their own noise: lines wrapped by a terminal
or a Markdown renderer, the C++ source location or stack torch appends. ``modern_wording`` strips that
noise and rewrites each historic wording into the modern one, so a rule has one regex per error kind and
a new historic wording is one row of ``REWORDINGS``.

Each rewording names a literal ``needle`` that its old wording contains, and its regex is compiled only
when a message holds the needle: ``explain`` must start fast. No torch here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Rewording:
    """An old wording of one error kind and the modern text it means."""

    kind: str  # the error kind, e.g. "view", "matmul"
    since: str  # which torch releases printed it, for the fact that says what was read
    needle: str  # literal text the old wording always contains
    pattern: str  # its regex; named groups feed ``modern``
    modern: str  # the modern wording, with ``{group}`` fields

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.pattern)


_SIZE = r"torch\.Size\(\[(?P<{}>[\d, ]*)\]\)"

REWORDINGS: tuple[Rewording, ...] = (
    Rewording(
        "view",
        "torch < 1.1",
        "' is invalid for input ",
        r"size '\[(?P<dims>[-\d, ]*)\]' is invalid for input (?:of )?with (?P<size>\d+) elements",
        "shape '[{dims}]' is invalid for input of size {size}",
    ),
    Rewording(
        "matmul",
        "torch < 1.7",
        "size mismatch, m1:",
        r"size mismatch, m1: \[(?P<a>\d+), (?P<b>\d+)\], m2: \[(?P<c>\d+), (?P<d>\d+)\]",
        "mat1 and mat2 shapes cannot be multiplied ({a}x{b} and {c}x{d})",
    ),
    Rewording(
        "conv_channels",
        "torch 0.4",
        "], so expected input[",
        r"Given (?P<what>groups=\d+|transposed=1), weight\[(?P<weight>[\d, ]+)\], so expected input\[",
        "Given {what}, weight of size [{weight}], expected input[",
    ),
    Rewording(
        "conv_rank",
        "torch 1.0",
        "-dimensional weight ",
        r"(?P<head>-dimensional weight )(?P<weight>\d+(?: \d+)+)(?=,)",
        "{head}[{weight}]",
    ),
    Rewording(
        "state_dict_size",
        "torch 0.4.1 - 1.0",
        "from checkpoint, where the shape is",
        r"copying a param of " + _SIZE.format("ckpt") + r" from checkpoint, where the shape is "
        r"" + _SIZE.format("model") + r" in current model",
        "copying a param with shape torch.Size([{ckpt}]) from checkpoint, the shape in current model is "
        "torch.Size([{model}])",
    ),
    Rewording(
        "state_dict_size",
        "torch < 0.4.1",
        "whose dimensions in the checkpoint are",
        r"While copying the parameter named \"?(?P<key>[\w.]+)\"?, whose dimensions in the model are "
        r"" + _SIZE.format("model") + r" and whose dimensions in the checkpoint are " + _SIZE.format("ckpt"),
        "size mismatch for {key}: copying a param with shape torch.Size([{ckpt}]) from checkpoint, the shape "
        "in current model is torch.Size([{model}])",
    ),
    Rewording(
        "spatial_target",
        "torch 1.x",
        "1only batches of spatial targets",
        r"\b1only batches of spatial targets supported \((?:non-empty )?3D tensors\)",
        "only batches of spatial targets supported (3D tensors)",
    ),
    Rewording(
        "spatial_target",
        "torch < 1.5",
        "(non-empty 3D tensors)",
        r"only batches of spatial targets supported \(non-empty 3D tensors\)",
        "only batches of spatial targets supported (3D tensors)",
    ),
    Rewording(
        "device",
        "torch 1.0 - 1.3",
        "but got backend ",
        r"Expected object of backend (?P<want>\w+) but got backend (?P<got>\w+) for argument #\d+ '(?P<arg>\w+)'",
        "Expected all tensors to be on the same device, but got {arg} is on {got_lower}, different from "
        "other tensors on {want_lower}",
    ),
    Rewording(
        "device",
        "torch 1.3 - 1.6",
        "but got device type ",
        r"Expected object of device type (?P<want>\w+) but got device type (?P<got>\w+) for argument #\d+ "
        r"'(?P<arg>\w+)'",
        "Expected all tensors to be on the same device, but got {arg} is on {got_lower}, different from "
        "other tensors on {want_lower}",
    ),
    Rewording(
        "device",
        "torch 1.x",
        "expected device ",
        r"expected device (?P<want>[\w:]+)(?: and dtype \w+)? but got device (?P<got>[\w:]+)",
        "Expected all tensors to be on the same device, but found at least two devices, {want} and {got}!",
    ),
    Rewording(
        "device",
        "torch < 1.5 (cudnn)",
        "to have the same device as tensor for argument",
        r"to have the same device as tensor for argument #\d+ '\w+'; but device (?P<a>\d+) does not equal "
        r"(?P<b>\d+)",
        "Expected all tensors to be on the same device, but found at least two devices, cuda:{a} and cuda:{b}!",
    ),
)

_TH_PREFIX = r"(?m)(?:^|(?<=: ))\s*invalid argument \d+: "
# ` at /pytorch/aten/src/TH/generic/THTensorMath.cpp:3616`, ` at ..\aten\src\TH/generic/THTensor.cpp:711`,
# cut ones (` at /Users/.../work/aten/src/TH/gen`): a C/C++/CUDA location torch appended
_SOURCE_LOCATION = r"(?i)\s+at\s+(?=\S*[/\\])\S*?(?:aten|TH|torch|conda)\S*"
# c10 appends the C++ stack: "Exception raised from ... (most recent call first):\nframe #0: ..."
_CPP_STACK = r"(?s)\s*(?:Exception raised from |frame #0: ).*"
# a size list printed the old ways, `[4 x 2048]` or `[64 3 7 7]`: rewritten `[4, 2048]`, `[64, 3, 7, 7]`
_OLD_SIZE_LIST = r"\[(\s*-?\d+(?:(?:\s*[,x]\s*|\s+)-?\d+)+\s*)\]"
# lines of a message that start a new item of it: kept on their own line
_ITEM_START = r"^\s*(?:size mismatch for |Missing key|Unexpected key|While copying|\t)"


@dataclass(frozen=True)
class Modern:
    """A message in the modern wording, and which historic wordings were read to get it."""

    text: str
    read: tuple[Rewording, ...] = ()

    @property
    def facts(self) -> list[str]:
        return [f"read as the modern wording of this {r.since} message" for r in self.read[:1]]


def modern_wording(message: str) -> Modern:
    """``message`` without paste noise and with every historic wording rewritten to the modern one."""
    text = message
    if "Exception raised from " in text or "frame #0: " in text:
        text = _compiled(_CPP_STACK).sub("", text)
    if "invalid argument " in text:
        text = _compiled(_TH_PREFIX).sub("", text)
    if " at " in text and ("/" in text or "\\" in text):
        text = _compiled(_SOURCE_LOCATION).sub("", text)
    text = _join_wrapped_lines(text)
    text = _comma_size_lists(text)
    read = []
    for rewording in REWORDINGS:
        if rewording.needle in text:
            new = rewording.regex.sub(lambda m, r=rewording: _fill(r.modern, m), text)
            if new != text:
                text = new
                read.append(rewording)
    return Modern(_comma_size_lists(text).strip() if read else text.strip(), tuple(read))


def _join_wrapped_lines(text: str) -> str:
    """One line per sentence: a terminal or Markdown wrapped the message (`is invalid\\nfor input`), but
    the items of a state_dict message stay one a line."""
    if "\n" not in text:
        return text
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if out and not _compiled(_ITEM_START).match(line):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


def _comma_size_lists(text: str) -> str:
    """`[4 x 2048]` / `[64 3 7 7]` -> `[4, 2048]` / `[64, 3, 7, 7]`."""
    return _compiled(_OLD_SIZE_LIST).sub(_size_list, text) if "[" in text else text


def _size_list(match: re.Match[str]) -> str:
    return "[" + ", ".join(re.findall(r"-?\d+", match[1])) + "]"


def _fill(template: str, match: re.Match[str]) -> str:
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    groups.update({f"{k}_lower": v.lower() for k, v in groups.items()})
    return template.format(**groups)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
