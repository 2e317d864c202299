"""Turn pasted text (a message, ``Type: message``, a Python/IPython traceback, chained) into a ParsedError.

The parser is line-based and linear in the size of the text, so a 10 MB paste answers as fast as a
short one (only the tail of a huge paste is read: the error of a log is at its end). No torch here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

LIBRARIES = ("torchvision", "torch", "timm", "einops")
MAX_CHARS = 1_000_000  # a longer paste keeps only its tail

# torch's own plumbing between a module call and the code that failed: never "where" an error is
_PLUMBING = (
    "torch/nn/modules/module.py",
    "torch/utils/_device.py",
    "torch/overrides.py",
    "torch/_tensor.py",
    "torch/utils/_contextlib.py",
    "torch/_jit_internal.py",
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\[(?:\d{1,3};)+\d{1,3}m")
_TRACEBACK_HEAD = re.compile(r"Traceback \(most recent call last\)")
_CHAIN_SEPARATOR = re.compile(
    r"^\s*(During handling of the above exception, another exception occurred:"
    r"|The above exception was the direct cause of the following exception:)\s*$"
)
_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$')
# a frame header whose start was cut off by the paste: `.../site-packages/x/y.py", line 457, in f`
_CUT_FRAME = re.compile(r'^\s*(?P<file>[^"\s]+\.py)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$')
_IPY_FRAME = re.compile(r"^File (?P<file>.+?):(?P<line>\d+)(?:, in (?P<func>[\w.<>]+)(?:\(.*)?)?\s*$")
_IPY_CELL = re.compile(
    r"^Cell (?P<file>In\s*\[\d*\]), line (?P<line>\d+)(?:, in (?P<func>[\w.<>]+)(?:\(.*)?)?\s*$"
)
_IPY_OLD_FRAME = re.compile(
    r"^(?P<file>\S+\.py|<ipython-input-[^>]*>|<string>) in (?P<func>[\w.<>]+)(?:\(.*)?$"
)
_IPY_ARROW = re.compile(r"^-+>\s*(?P<line>\d+)\s?(?P<source>.*)$")
_IPY_HEADER = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)\s+Traceback \(most recent call last\)")
_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)(?::(?P<msg>.*))?$")
_EXC_NAME = re.compile(r"(?:Error|Exception|Interrupt|Exit|Warning|Iteration|Failure|Fault)$")
_CARETS = re.compile(r"^\s*[\^~]+\s*$")
_LIBRARY_PATH = re.compile(r"(?:^|[/\\])(?P<lib>torchvision|torch|timm|einops)[/\\](?P<rel>.+)$")
_ERRORISH = re.compile(
    r"error|invalid|expected|mismatch|must|cannot|can't|could not|unable|size|shape|dimension|"
    r"out of bounds|out of range|assert|failed|not supported|doesn't match|does not match|"
    r"wrong|unexpected|missing|exception|should|not implemented|out of bounds",
    re.IGNORECASE,
)


@dataclass
class Frame:
    file: str
    line: int | None
    function: str | None
    source: str | None = None

    @property
    def library(self) -> str | None:
        """``torch``/``torchvision``/``timm``/``einops`` when the file is inside one of them."""
        found = library_path(self.file)
        return found[0] if found else None

    @property
    def library_file(self) -> str | None:
        """The path inside the library, e.g. ``models/detection/fcos.py``."""
        found = library_path(self.file)
        return found[1] if found else None

    @property
    def is_plumbing(self) -> bool:
        path = self.file.replace("\\", "/")
        return any(path.endswith(p) for p in _PLUMBING)


@dataclass
class ParsedError:
    type: str | None  # e.g. "RuntimeError", "torch.OutOfMemoryError"; None for a bare message
    message: str  # the whole message of the relevant (last) exception
    frames: list[Frame] = field(default_factory=list)  # outermost first
    raw: str = ""
    chain: list[ParsedError] = field(default_factory=list)  # the exceptions before it, oldest first

    @property
    def library_frame(self) -> Frame | None:
        """The innermost frame inside torch/torchvision/timm/einops that is not torch's call plumbing."""
        for frame in reversed(self.frames):
            if frame.library and not frame.is_plumbing:
                return frame
        return None

    @property
    def user_frame(self) -> Frame | None:
        """The innermost frame in the user's own code (outside site-packages when possible)."""
        outside = [
            f for f in self.frames if not f.library and not f.file.startswith("<frozen") and not _in_headfit(f.file)
        ]
        own = [f for f in outside if not _in_installed_package(f.file)]
        candidates = own or outside
        return candidates[-1] if candidates else None


def library_path(path: str) -> tuple[str, str] | None:
    """``.../site-packages/torchvision/models/detection/fcos.py`` -> ``("torchvision", "models/detection/fcos.py")``."""
    path = path.replace("\\", "/")
    marker = max(path.rfind("site-packages/"), path.rfind("dist-packages/"))
    if marker >= 0:
        path = path[marker:].split("/", 1)[1]
    match = _LIBRARY_PATH.search(path)
    if match is None or (marker < 0 and not match.group("rel").endswith(".py")):
        return None
    return match.group("lib"), match.group("rel")


def _in_installed_package(path: str) -> bool:
    path = path.replace("\\", "/")
    return "site-packages/" in path or "dist-packages/" in path or "/lib/python3" in path


_HEADFIT_SOURCE = os.path.dirname(os.path.dirname(os.path.realpath(__file__))).replace("\\", "/") + "/"


def _in_headfit(path: str) -> bool:
    """headfit's own source, also in an editable install: its tracer calls the model, and a frame there
    is never the user's code."""
    return path.replace("\\", "/").startswith(_HEADFIT_SOURCE)


def parse_error(text: str) -> ParsedError | str:
    """Parse ``text``; return a reason string when it is not an error message at all."""
    if not isinstance(text, str):
        return "the input is not text"
    reason = _not_an_error(text)
    if reason:
        return reason
    if len(text) > MAX_CHARS:
        text = text[-MAX_CHARS:].split("\n", 1)[-1]
    clean = _unemphasise(_unfence(_unquote(_ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n"))))
    segments = _split_chain(clean.split("\n"))
    parsed = [p for p in (_parse_segment(seg) for seg in segments) if p is not None]
    if not parsed:
        return _prose_reason(clean)
    last = parsed[-1]
    last.chain = parsed[:-1]
    last.raw = text
    return last


def parse_exception(exc: BaseException) -> ParsedError:
    """The same structure from a live exception: type, message, frames (with source) and its chain."""
    chain: list[ParsedError] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(_from_exception(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    chain.reverse()
    last = chain[-1]
    last.chain = chain[:-1]
    return last


def exception_type_name(exc: BaseException) -> str:
    """``RuntimeError``, ``torch.OutOfMemoryError``: the name Python's traceback prints."""
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__", None):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _from_exception(exc: BaseException) -> ParsedError:
    import traceback  # only live exceptions need it; pasted text must parse fast from a cold start

    frames = [
        Frame(s.filename, s.lineno, s.name, (s.line or "").strip() or None)
        for s in traceback.extract_tb(exc.__traceback__)
    ]
    return ParsedError(exception_type_name(exc), _exception_message(exc), frames, raw="")


def _exception_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]  # str(KeyError) adds quotes
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises: python prints `<exception str() failed>`
        return "<exception str() failed>"


def _unquote(text: str) -> str:
    """Strip Markdown/e-mail quote markers (``> ``) when every non-blank line carries one."""
    lines = text.split("\n")
    if not all(line.lstrip().startswith(">") for line in lines if line.strip()):
        return text
    return "\n".join(re.sub(r"^\s*>+ ?", "", line) for line in lines)


_FENCE = re.compile(r"^\s*(?:```|~~~)[\w+-]*\s*$", re.M)


def _unfence(text: str) -> str:
    """Markdown code fences (```` ``` ````, ```` ```python ````) around a pasted traceback are not part of it."""
    return _FENCE.sub("", text) if "```" in text or "~~~" in text else text


_EMPHASIS = re.compile(r"^(\s*)(\*\*|__|`|\"|'|“)(\S.*?)(?:\2|”)\s*$", re.M)


def _unemphasise(text: str) -> str:
    """Lines a user wrapped whole in Markdown bold or code (``**RuntimeError: ...**``) or in quotes
    (``"RuntimeError: ..."``) lose the markers."""
    return _EMPHASIS.sub(r"\1\3", text)


def _not_an_error(text: str) -> str | None:
    head = text[:4096]
    if not text.strip():
        return "the input is empty"
    if "\x00" in head or _control_ratio(head) > 0.1:
        return "the input looks like binary data, not an error message"
    return None


def _control_ratio(text: str) -> float:
    bad = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\n\r\t\x1b") or ch == "\ufffd")
    return bad / max(len(text), 1)


def _prose_reason(text: str) -> str:
    return "the input has no exception, traceback or error message in it (it reads as prose)"


def _split_chain(lines: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for line in lines:
        if _CHAIN_SEPARATOR.match(line):
            segments.append([])
        else:
            segments[-1].append(line)
    return segments


def _parse_segment(lines: list[str]) -> ParsedError | None:
    """One exception: its traceback frames (if any) and its ``Type: message`` (or a bare message)."""
    start, header_type = _traceback_start(lines)
    if start is None:
        return _bare_message(lines)
    frames, end = _frames(lines, start)
    error = _exception_after(lines, end)
    if error is None:
        if header_type is None and not frames:
            return _bare_message(lines)
        error = (header_type, "")
    return ParsedError(error[0] or header_type, error[1], frames)


def _traceback_start(lines: list[str]) -> tuple[int | None, str | None]:
    """Index of the line after the last traceback header, and the type an IPython header names."""
    for i in range(len(lines) - 1, -1, -1):
        if _TRACEBACK_HEAD.search(lines[i]):
            header = _IPY_HEADER.match(lines[i].strip())
            return i + 1, header.group("type") if header else None
    for i, line in enumerate(lines):  # a traceback pasted without its header line
        if _PY_FRAME.match(line) or _IPY_FRAME.match(line) or _IPY_CELL.match(line) or _CUT_FRAME.match(line):
            return i, None
    return None, None


def _frames(lines: list[str], start: int) -> tuple[list[Frame], int]:
    """Frames from ``start`` on, and the index where the frames end (the exception line follows)."""
    frames: list[Frame] = []
    i, last_frame_end = start, start
    while i < len(lines):
        frame = _frame_header(lines[i])
        if frame is not None:
            i = _frame_body(lines, i + 1, frame)
            frames.append(frame)
            last_frame_end = i
            continue
        i += 1
    return frames, last_frame_end


def _frame_header(line: str) -> Frame | None:
    match = _PY_FRAME.match(line) or _CUT_FRAME.match(line)
    if match:
        return Frame(match["file"], int(match["line"]), match["func"])
    match = _IPY_FRAME.match(line.strip()) or _IPY_CELL.match(line.strip())
    if match:
        return Frame(match["file"].strip(), int(match["line"]), match["func"])
    match = _IPY_OLD_FRAME.match(line.strip())
    if match:
        return Frame(match["file"], None, match["func"])
    return None


def _frame_body(lines: list[str], i: int, frame: Frame) -> int:
    """Read the source lines under a frame header (Python: indented; IPython: numbered, ``---->``)."""
    while i < len(lines):
        line = lines[i]
        if _frame_header(line) is not None or _is_exception_line(line) or _indented_exception(line):
            break
        arrow = _IPY_ARROW.match(line.strip())
        if arrow:
            frame.line = frame.line or int(arrow["line"])
            frame.source = arrow["source"].strip() or frame.source
        elif frame.source is None and line.startswith("    ") and not _CARETS.match(line):
            if not re.match(r"^\s+\d+\s", line):  # an IPython context line, not the failing one
                frame.source = line.strip()
        i += 1
    return i


def _is_exception_line(line: str) -> bool:
    if not line or line[0].isspace():
        return False
    match = _EXC_LINE.match(line.rstrip())
    if match is None:
        return False
    name = match["type"].rsplit(".", 1)[-1]
    return bool(_EXC_NAME.search(name)) or match["msg"] is not None and name[:1].isupper()


def _exception_after(lines: list[str], start: int) -> tuple[str, str] | None:
    for i in range(start, len(lines)):
        if _is_exception_line(lines[i]):
            match = _EXC_LINE.match(lines[i].rstrip())
            assert match is not None
            rest = [match["msg"] or ""] + lines[i + 1 :]
            return match["type"], _join_message(rest)
    return _indented_exception_after(lines, start)


def _indented_exception_after(lines: list[str], start: int) -> tuple[str, str] | None:
    """A traceback pasted indented as a whole (a Markdown code block, a log): the first indented
    ``SomeError: message`` after the frames. Source lines never read so (``raise X(...)``, ``x = f(...)``)."""
    for i in range(start, len(lines)):
        match = _indented_exception(lines[i])
        if match:
            return match["type"], _join_message([match["msg"]] + lines[i + 1 :])
    return None


def _indented_exception(line: str) -> re.Match[str] | None:
    match = _EXC_LINE.match(line.strip())
    if match and match["msg"] is not None and _EXC_NAME.search(match["type"].rsplit(".", 1)[-1]):
        return match
    return None


def _bare_message(lines: list[str]) -> ParsedError | None:
    """No traceback: the last ``Type: message`` line starts the message, else the whole text is it."""
    for i in range(len(lines) - 1, -1, -1):
        match = _EXC_LINE.match(lines[i].strip())
        if match and match["msg"] is not None and _EXC_NAME.search(match["type"].rsplit(".", 1)[-1]):
            return ParsedError(match["type"], _join_message([match["msg"]] + lines[i + 1 :]))
    text = "\n".join(lines).strip()
    if not text or not _ERRORISH.search(text):
        return None
    return ParsedError(None, text)


def _join_message(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip()
