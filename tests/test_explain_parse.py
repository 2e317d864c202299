"""The parser reads real tracebacks: Python's, chained, IPython's (with colours), and bare messages."""

from __future__ import annotations

import time

import pytest
import torch

from explain_support import ipython_traceback, raised
from headfit.explain.parse import ParsedError, library_path, parse_error, parse_exception


def _bad_view() -> None:
    torch.zeros(7).view(3, -1, 5)


def _wrapped() -> None:
    try:
        _bad_view()
    except RuntimeError as exc:
        raise ValueError("could not build the batch") from exc


def _during_handling() -> None:
    try:
        _bad_view()
    except RuntimeError:
        {}["missing"]


def _parsed(text: str) -> ParsedError:
    parsed = parse_error(text)
    assert isinstance(parsed, ParsedError), parsed
    return parsed


def test_python_traceback_gives_type_message_and_frames():
    r = raised(_bad_view)
    parsed = _parsed(r.text)
    assert parsed.type == "RuntimeError"
    assert parsed.message == r.message
    assert parsed.frames[-1].function == "_bad_view"
    assert parsed.frames[-1].source == "torch.zeros(7).view(3, -1, 5)"
    assert parsed.user_frame is not None and parsed.user_frame.file.endswith("test_explain_parse.py")


def test_last_exception_of_a_chain_is_the_relevant_one_and_earlier_ones_are_kept():
    for fn, last_type in ((_wrapped, "ValueError"), (_during_handling, "KeyError")):
        parsed = _parsed(raised(fn).text)
        assert parsed.type == last_type
        assert [p.type for p in parsed.chain] == ["RuntimeError"]
        assert parsed.chain[0].message == "shape '[3, -1, 5]' is invalid for input of size 7"


@pytest.mark.parametrize("colour", [True, False])
def test_ipython_traceback_with_and_without_colours(colour):
    text = ipython_traceback(_bad_view, colour=colour)
    assert ("\x1b[" in text) == colour
    parsed = _parsed(text)
    assert parsed.type == "RuntimeError"
    assert parsed.message == "shape '[3, -1, 5]' is invalid for input of size 7"
    inner = parsed.frames[-1]
    assert inner.function == "_bad_view" and inner.line is not None
    assert inner.source == "torch.zeros(7).view(3, -1, 5)"


def test_old_ipython_format_with_arrow_lines():
    text = (
        "RuntimeError                              Traceback (most recent call last)\n"
        "<ipython-input-3-5d8c> in <module>\n"
        "----> 1 model(images)\n\n"
        "~/venv/lib/python3.8/site-packages/torchvision/models/detection/fcos.py in forward(self, x)\n"
        "    191         N, _, H, W = cls_logits.shape\n"
        "--> 192         cls_logits = cls_logits.view(N, -1, self.num_classes, H, W)\n\n"
        "RuntimeError: shape '[2, -1, 91, 100, 100]' is invalid for input of size 60000\n"
    )
    parsed = _parsed(text)
    frame = parsed.library_frame
    assert frame is not None and frame.library == "torchvision" and frame.line == 192
    assert frame.source == "cls_logits = cls_logits.view(N, -1, self.num_classes, H, W)"
    assert parsed.message.endswith("size 60000")


def test_multiline_state_dict_message_is_kept_whole():
    model, other = torch.nn.Linear(512, 10), torch.nn.Linear(512, 1000)
    r = raised(lambda: model.load_state_dict(other.state_dict()))
    parsed = _parsed(r.text)
    assert parsed.message == r.message.strip()
    assert parsed.message.count("size mismatch for") == 2


def test_dotted_exception_types():
    parsed = _parsed("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert parsed.type == "torch.OutOfMemoryError"
    assert parsed.message.startswith("CUDA out of memory")
    accel = _parsed("noise before\ntorch.AcceleratorError: CUDA error: device-side assert triggered\nmore")
    assert accel.type == "torch.AcceleratorError" and accel.message.endswith("more")


def test_bare_message_and_typed_message():
    assert _parsed("shape '[3, 5]' is invalid for input of size 7").type is None
    typed = _parsed("RuntimeError: shape '[3, 5]' is invalid for input of size 7")
    assert (typed.type, typed.message) == ("RuntimeError", "shape '[3, 5]' is invalid for input of size 7")


@pytest.mark.parametrize(
    "text, word",
    [
        ("", "empty"),
        ("  \n\t ", "empty"),
        ("\x00\x01\x02\x03binary", "binary"),
        ("the weather is nice today", "prose"),
    ],
)
def test_not_an_error_gives_a_reason(text, word):
    reason = parse_error(text)
    assert isinstance(reason, str) and word in reason


def test_huge_paste_answers_fast_and_finds_the_error_at_its_end():
    text = ("epoch 1 loss 0.5\n" * 600_000) + raised(_bad_view).text
    assert len(text) > 10_000_000
    start = time.perf_counter()
    parsed = _parsed(text)
    assert time.perf_counter() - start < 1.0
    assert parsed.message == "shape '[3, -1, 5]' is invalid for input of size 7"


def test_parse_exception_reads_the_live_chain():
    exc = raised(_wrapped).exception
    parsed = parse_exception(exc)
    assert parsed.type == "ValueError"
    assert parsed.chain[0].type == "RuntimeError"
    assert parsed.chain[0].frames[-1].source == "torch.zeros(7).view(3, -1, 5)"


def test_library_frame_skips_torch_call_plumbing():
    conv = torch.nn.Conv2d(3, 8, 3)
    parsed = parse_exception(raised(lambda: conv(torch.zeros(1, 1, 8, 8))).exception)
    frame = parsed.library_frame
    assert frame is not None and frame.library_file == "nn/modules/conv.py"


def test_library_path():
    assert library_path("/x/site-packages/torchvision/models/detection/fcos.py") == (
        "torchvision",
        "models/detection/fcos.py",
    )
    assert library_path("/x/lib/site-packages/timm/layers/patch_embed.py") == (
        "timm",
        "layers/patch_embed.py",
    )
    assert library_path("/home/me/project/train.py") is None


def test_markdown_quoted_traceback_is_unquoted():
    quoted = "\n".join(
        f"> {line}"
        for line in [
            "Traceback (most recent call last):",
            '  File "train.py", line 3, in <module>',
            "    out = model(x)",
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x2048 and 512x10)",
        ]
    )
    parsed = _parsed(quoted)
    assert parsed.type == "RuntimeError"
    assert parsed.message == "mat1 and mat2 shapes cannot be multiplied (4x2048 and 512x10)"
    assert [(f.file, f.line, f.source) for f in parsed.frames] == [("train.py", 3, "out = model(x)")]
