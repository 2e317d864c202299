"""State-dict evidence: keys saved from a wrapped model (``module.``, ``_orig_mod.``, ``model.``), and the
user's own name for the state dict in every fix (``name_the_state_dict``)."""

from __future__ import annotations

import ast
import linecache
import re
from collections.abc import Mapping
from types import FrameType
from typing import Any

import torch

from headfit.diagnosis import Cause, Diagnosis
from headfit.evidence.base import LiveEvidence, finder, name_of
from headfit.scene import Scene, is_library

PREFIX_CODE = "HF133"  # a state_dict whose keys carry `module.` / `_orig_mod.`


@finder(code=PREFIX_CODE, priority=50)
def prefixed_state_dict(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    user_first = sorted(reversed(scene.frames), key=is_library)  # the user's own name for it, if any
    for frame in user_first:
        for name, value in frame.f_locals.items():
            prefix = _common_prefix(value)
            if prefix is None:
                continue
            sd_name = name_of(scene, value, None) or (name if name != "self" else "state_dict")
            fact = f"every key of `{sd_name}` starts with `{prefix}` (e.g. `{next(iter(value))}`), the model's keys do not"
            fix = f'{scene.prefix}.load_state_dict({{k.removeprefix("{prefix}"): v for k, v in {sd_name}.items()}})'
            cause = Cause(
                f"`{sd_name}` was saved from a wrapped model (`{prefix}` prefix)", 0.9, "", None, fix
            )
            return LiveEvidence([fact], [cause])
    return None


# a fix's free name `state` stands for the state_dict given to load_state_dict
_STATE_NAME = re.compile(r"(?<![\w.])state(?![\w])")


def name_the_state_dict(scene: Scene, diagnosis: Diagnosis) -> None:
    """Rewrite the fixes' placeholder `state` as what the user passed to `load_state_dict`: their variable's
    name, or, for an expression such as `torch.load(path)`, a first statement `state = torch.load(path)`.

    Read from the user's source line: `load_state_dict` copies its argument, so the live object has no name.
    """
    if not any(f.f_code.co_name == "load_state_dict" for f in scene.frames):
        return
    expression = _load_state_dict_argument(scene.user_frame)
    if expression is None or expression == "state":
        return
    for cause in diagnosis.causes:
        if not cause.fix or not _STATE_NAME.search(cause.fix):
            continue
        if expression.isidentifier():
            cause.fix = _STATE_NAME.sub(expression, cause.fix)
        else:
            cause.fix = f"state = {expression}; {cause.fix}"


def _load_state_dict_argument(frame: FrameType | None) -> str | None:
    """The source of the argument in the user's `....load_state_dict(ARG)` call on the failing line."""
    if frame is None:
        return None
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    try:
        tree = ast.parse(line)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load_state_dict" and node.args:
            return ast.unparse(node.args[0])
    return None


def _common_prefix(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return None
    keys = list(value)
    if not all(isinstance(k, str) for k in keys) or not isinstance(value[keys[0]], torch.Tensor):
        return None
    for prefix in ("module.", "_orig_mod.", "model."):
        if all(k.startswith(prefix) for k in keys):
            return prefix
    return None
