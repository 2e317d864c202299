"""What the frames of a failed program hold: the user's model, the failing module, the user's names.

``read_scene`` reads a traceback's frames once; the live evidence finders (``headfit.evidence``) and the
live hooks (``headfit.live``) ask the ``Scene`` and the frame helpers here. Nothing here imports torch
at import time: the live hooks are installed in programs that may never load it.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

_HEADFIT_DIR = str(Path(__file__).resolve().parent)
_LIBRARY_DIRS = tuple(
    {str(Path(p).resolve()) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"])}
    | {str(Path(sysconfig.get_paths()["platlib"]).resolve()), _HEADFIT_DIR}
)
MODULE_CALL_FUNCTIONS = {"_call_impl", "_wrapped_call_impl", "__call__"}


@dataclass
class Scene:
    """What the failing frames hold: the user's model, the failing module, the user's names."""

    frames: list[FrameType]  # outermost first
    model: Any = None  # the outermost nn.Module on the stack (or the user's model for a loss failure)
    module: Any = None  # the innermost module whose code is on the stack
    module_path: str | None = None  # its path in model.named_modules()
    module_frame: FrameType | None = None  # the innermost frame running a method of ``module``
    prefix: str = "model"  # the user's name for ``model``
    user_frame: FrameType | None = None  # the innermost frame of the user's own code
    modules_on_stack: list[Any] = field(default_factory=list)


def read_scene(frames: list[FrameType]) -> Scene:
    """Find the modules on the stack, the user's model, its variable name and the failing module."""
    from torch import nn

    scene = Scene(frames=frames)
    scene.user_frame = innermost(frames, lambda f: not is_library(f))
    on_stack: list[tuple[Any, FrameType]] = []
    for frame in frames:
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and frame.f_code.co_name not in MODULE_CALL_FUNCTIONS:
            on_stack.append((owner, frame))
    scene.modules_on_stack = _unique([m for m, _ in on_stack])
    models = [m for m in scene.modules_on_stack if not _is_loss(m)]
    scene.model = models[0] if models else _model_in_user_frames(frames)
    if scene.model is None:
        return scene
    paths = {id(m): name for name, m in scene.model.named_modules()}
    for module, frame in reversed(on_stack):
        if id(module) in paths:
            scene.module, scene.module_path, scene.module_frame = module, paths[id(module)], frame
            break
    scene.prefix = _user_name(frames, scene.model) or "model"
    return scene


def is_library(frame: FrameType) -> bool:
    """Whether ``frame`` runs library code (the standard library, site-packages, headfit itself)."""
    filename = frame.f_code.co_filename
    if filename.startswith("<") and not filename.startswith(("<ipython-input", "<string>", "<stdin>")):
        return True
    resolved = os.path.realpath(filename)
    return resolved.startswith(_LIBRARY_DIRS) or "site-packages" in resolved


def innermost(frames: list[FrameType], keep: Callable[[FrameType], bool]) -> FrameType | None:
    for frame in reversed(frames):
        if keep(frame):
            return frame
    return None


def names_in(frame: FrameType) -> dict[str, Any]:
    """The names a frame's code sees: its locals, then its globals."""
    names = dict(frame.f_globals) if frame.f_code.co_name == "<module>" else {}
    names.update(frame.f_locals)
    if frame.f_code.co_name != "<module>":
        for name, value in frame.f_globals.items():
            names.setdefault(name, value)
    return names


def user_name(scene: Scene, obj: Any) -> str | None:
    """The name the user's code gives ``obj``, from the innermost user frame that holds it."""
    return _user_name(scene.frames, obj)


def user_values(scene: Scene, kind: type) -> list[tuple[str, Any]]:
    """(name, value) of every ``kind`` in the user's frames, innermost first."""
    found, seen = [], set()
    for frame in reversed(scene.frames):
        if is_library(frame):
            continue
        for name, value in names_in(frame).items():
            if isinstance(value, kind) and id(value) not in seen and not name.startswith("_"):
                seen.add(id(value))
                found.append((name, value))
    return found


def frame_inputs(frame: FrameType | None) -> list[tuple[str, Any]]:
    """The tensor arguments of a frame's function, in order (``self`` left out)."""
    import torch

    if frame is None:
        return []
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return [
        (n, frame.f_locals[n])
        for n in names
        if n != "self" and isinstance(frame.f_locals.get(n), torch.Tensor)
    ]


def tensor_fact(scene: Scene, limit: int = 6) -> str | None:
    """``tensors in `Up.forward`: `x1` [1, 64, 28, 28], `x2` [1, 64, 27, 27]``, from the failing frame."""
    import torch

    frame = failing_method_frame(scene)
    if frame is None:
        return None
    tensors = [(n, v) for n, v in frame.f_locals.items() if isinstance(v, torch.Tensor)]
    if not tensors:
        return None
    shown = ", ".join(f"`{n}` {list(v.shape)}" for n, v in tensors[:limit])
    owner = type(frame.f_locals["self"]).__name__ if "self" in frame.f_locals else None
    where = f"{owner}.{frame.f_code.co_name}" if owner else frame.f_code.co_name
    return f"tensors in `{where}`: {shown}"


def forward_frame(scene: Scene, module: Any) -> FrameType | None:
    """The outermost frame running ``module``'s own code (its forward), not ``nn.Module.__call__``."""
    for frame in scene.frames:
        if frame.f_locals.get("self") is module and frame.f_code.co_name not in MODULE_CALL_FUNCTIONS:
            return frame
    return None


def failing_method_frame(scene: Scene) -> FrameType | None:
    """The innermost frame running a method of the failing module: where its line and tensors are."""
    if scene.module_frame is None:
        return None
    start = scene.frames.index(scene.module_frame)
    for frame in reversed(scene.frames[start:]):
        if frame.f_locals.get("self") is scene.module:
            return frame
    return scene.module_frame


def _unique(items: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def _is_loss(module: Any) -> bool:
    from torch.nn.modules.loss import _Loss

    return isinstance(module, _Loss)


def _model_in_user_frames(frames: list[FrameType]) -> Any:
    """For a failure outside any model (a loss, a data check): the biggest model the user's code holds."""
    from torch import nn

    for frame in reversed(frames):
        if is_library(frame):
            continue
        found = [v for v in names_in(frame).values() if isinstance(v, nn.Module) and not _is_loss(v)]
        if found:
            return max(found, key=lambda m: sum(p.numel() for p in m.parameters()))
    return None


def _user_name(frames: list[FrameType], obj: Any) -> str | None:
    for frame in reversed(frames):
        if is_library(frame):
            continue
        for name, value in names_in(frame).items():
            if value is obj and name != "self" and not name.startswith("_"):
                return name
    return None
