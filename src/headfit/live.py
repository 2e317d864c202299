"""Live diagnosis: read the objects in the frames of a failed program and explain the failure.

``explain`` only has the message. When a script, a program or a notebook cell dies, its traceback still
holds the truth: the module whose forward raised, its attributes and layers, the tensors that reached it,
the targets and the state dicts. ``diagnose_exception`` reads them; ``install()``, ``diagnosing()``,
``headfit run`` and ``%load_ext headfit`` print the result after the normal traceback.

Nothing here imports torch: a program that has not imported torch gets the message-only diagnosis.
"""

from __future__ import annotations

import contextlib
import copy
import json
import linecache
import os
import runpy
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from headfit.diagnosis import Cause, Diagnosis, Location, unrecognised
from headfit.scene import (
    Scene,
    failing_method_frame,
    frame_inputs,
    innermost,
    is_library,
    read_scene,
    tensor_fact,
)

LIVE_CODE = "HF130"  # the message alone is not recognised, but the live objects name the culprit


# ---------------------------------------------------------------------------------------------------
# public API


def diagnose_exception(exc: BaseException) -> Diagnosis:
    """The diagnosis of ``exc`` from its message and the live objects of its traceback. Never raises."""
    try:
        return _diagnose(exc)
    except Exception as internal:  # a diagnosis must never replace the user's own error
        message = _message_of(exc)
        return unrecognised(
            message, f"headfit failed while reading the live objects ({internal!r})", type(exc).__name__
        )


def print_diagnosis(diagnosis: Diagnosis, file: Any = None) -> None:
    """The rustc-like rendering of ``diagnosis`` on ``file`` (stderr by default)."""
    from rich.console import Console

    from headfit.render import diagnosis_text

    out = file if file is not None else sys.stderr
    Console(file=out, highlight=False, soft_wrap=False).print(diagnosis_text(diagnosis))


def install() -> None:
    """Explain uncaught exceptions of this program: the normal traceback, then the diagnosis."""
    previous = sys.excepthook
    if hasattr(previous, "headfit_previous"):  # installed already
        return

    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        previous(etype, value, tb)
        if isinstance(value, Exception):
            print_diagnosis(diagnose_exception(value))

    hook.headfit_previous = previous  # type: ignore[attr-defined]
    sys.excepthook = hook


@contextlib.contextmanager
def diagnosing(file: Any = None) -> Iterator[None]:
    """Print a diagnosis of an exception raised inside the block, then re-raise it unchanged."""
    try:
        yield
    except Exception as exc:
        print_diagnosis(diagnose_exception(exc), file)
        raise


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext headfit``: after IPython's own traceback, print the diagnosis of the exception."""

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)
        print_diagnosis(diagnose_exception(value))

    ipython.set_custom_exc((Exception,), handler)


def unload_ipython_extension(ipython: Any) -> None:
    ipython.set_custom_exc((), None)


def run_script(script: str, args: list[str], json_path: str | None = None) -> int:
    """Run ``script`` as ``python script args`` would; on an uncaught exception print the traceback and
    the diagnosis and return 1. SystemExit and KeyboardInterrupt pass through untouched."""
    path = Path(script)
    if json_path:
        _prepare_report(Path(json_path))
    sys.argv = [script, *args]
    sys.path[0:1] = [str(path.resolve().parent)]  # python puts the script's folder first
    try:
        runpy.run_path(str(path.absolute()), run_name="__main__")
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:  # as python does: the traceback, then exit 130
        traceback.print_exception(type(exc), exc, _without_runner_frames(exc.__traceback__, path))
        raise SystemExit(130) from None
    except BaseException as exc:
        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, _without_runner_frames(exc.__traceback__, path))
        diagnosis = diagnose_exception(exc)
        print_diagnosis(diagnosis)
        if json_path:
            _write_report(Path(json_path), diagnosis)
        return 1
    return 0


def _prepare_report(path: Path) -> None:
    """Make the folder of ``--json PATH`` before the script runs, so a long run does not end unreported."""
    from headfit.errors import UsageError

    folder = next(p for p in path.absolute().parents if p.exists())
    if not folder.is_dir():
        raise UsageError(
            f"cannot write the diagnosis to {str(path)!r}: {str(folder)!r} is a file, not a folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the diagnosis to {str(path)!r}: {str(folder)!r} is not writable")
    path.parent.mkdir(parents=True, exist_ok=True)


def _write_report(path: Path, diagnosis: Diagnosis) -> None:
    from headfit.errors import UsageError
    from headfit.files import atomic_write_text

    try:
        atomic_write_text(path, json.dumps(diagnosis.to_dict(), indent=2, default=str) + "\n")
    except UsageError as exc:  # the traceback and the diagnosis are already on stderr
        print(f"headfit: {exc}", file=sys.stderr)


def _without_runner_frames(tb: TracebackType | None, script: Path) -> TracebackType | None:
    """Drop headfit's and runpy's frames above the script's own, as ``python script`` shows it."""
    target = os.path.realpath(script)
    start = tb
    while start is not None and os.path.realpath(start.tb_frame.f_code.co_filename) != target:
        start = start.tb_next
    return start  # None when the script never ran (a SyntaxError): python shows no frames then


# ---------------------------------------------------------------------------------------------------
# reading the frames


def _diagnose(exc: BaseException) -> Diagnosis:
    diagnosis = _message_diagnosis(exc)
    frames = _frames(exc.__traceback__)
    user = innermost(frames, lambda f: not is_library(f))
    if user is not None:
        diagnosis.user_location = _location_of(user)
    if "torch" not in sys.modules or not frames:
        return diagnosis
    try:
        return _with_live_evidence(copy.deepcopy(diagnosis), read_scene(frames), exc)
    except Exception as internal:  # the message-only diagnosis still stands
        diagnosis.facts.append(f"headfit could not read the live objects ({internal!r})")
        return diagnosis


def _message_diagnosis(exc: BaseException) -> Diagnosis:
    """What the message alone says (the explain engine), never failing."""
    message = _message_of(exc)
    try:
        from headfit.explain import explain

        return explain(exc)
    except Exception:
        pass
    try:
        from headfit.explain import diagnose_parsed
        from headfit.explain.parse import Frame, ParsedError

        frames = [
            Frame(f.f_code.co_filename, line, f.f_code.co_name, linecache.getline(f.f_code.co_filename, line))
            for f, line in traceback.walk_tb(exc.__traceback__)
        ]
        return diagnose_parsed(ParsedError(type(exc).__name__, message, frames))
    except Exception:
        return unrecognised(message, "no headfit rule matches this error message", type(exc).__name__)


def _message_of(exc: BaseException) -> str:
    try:
        if isinstance(exc, KeyError) and len(exc.args) == 1:
            return repr(exc.args[0])
        return str(exc)
    except Exception:  # an exception whose __str__ raises: python prints `<exception str() failed>`
        return "<exception str() failed>"


def _frames(tb: TracebackType | None) -> list[FrameType]:
    return [frame for frame, _ in traceback.walk_tb(tb)]


def _location_of(frame: FrameType) -> Location:
    line = frame.f_lineno
    source = linecache.getline(frame.f_code.co_filename, line).strip() or None
    return Location(file=frame.f_code.co_filename, line=line, source=source)


# ---------------------------------------------------------------------------------------------------
# evidence


def _with_live_evidence(diagnosis: Diagnosis, scene: Scene, exc: BaseException) -> Diagnosis:
    from headfit.enrich import enrich, merge_causes, name_the_model
    from headfit.evidence import data_evidence, name_the_state_dict

    recognised_by_message = diagnosis.recognised
    before = len(diagnosis.causes)
    message_causes = list(diagnosis.causes)
    message_top = message_causes[0] if message_causes else None
    if scene.module_frame is not None:
        location = _location_of(failing_method_frame(scene))
        diagnosis.location = Location(
            scene.module_path, type(scene.module).__name__, location.file, location.line, location.source
        )
    if scene.model is not None and scene.module_path is not None:
        inputs = frame_inputs(scene.module_frame) if scene.module_frame is not None else []
        shapes = [list(t.shape) for _, t in inputs if hasattr(t, "shape")]
        enrich(diagnosis, scene.model, scene.module_path, prefix=scene.prefix, input_shapes=shapes or None)
    tensors = tensor_fact(scene)
    if tensors and tensors not in diagnosis.facts:
        diagnosis.facts.append(tensors)
    evidence = data_evidence(scene, exc, diagnosis)
    diagnosis.facts.extend(f for f in evidence.facts if f not in diagnosis.facts)
    diagnosis.causes = merge_causes(diagnosis.causes, evidence.causes)
    if evidence.settles:
        _drop_message_guesses(diagnosis, message_causes)
    name_the_model(diagnosis.causes, scene.prefix)
    name_the_state_dict(scene, diagnosis)
    if not recognised_by_message and len(diagnosis.causes) > before:
        _name_live_diagnosis(diagnosis, evidence.code)
    if scene.model is not None:
        _drop_guesses_about_missing_modules(diagnosis, message_causes, scene.model)
    _live_outranks_message(diagnosis, message_causes)
    if message_top is not None and not evidence.settles:
        _note_disagreement(diagnosis, message_top)
    return diagnosis


def _name_live_diagnosis(diagnosis: Diagnosis, code: str | None) -> None:
    """The message matched no rule but the live objects explain it: give it a live code."""
    from headfit.catalogue import code_info

    code = code or LIVE_CODE
    info = code_info(code)
    diagnosis.code = code
    diagnosis.category = info.category if info else "live_evidence"
    diagnosis.ranked()
    diagnosis.summary = diagnosis.causes[0].summary
    diagnosis.reason = None


def _drop_message_guesses(diagnosis: Diagnosis, message_causes: list[Cause]) -> None:
    """The live values answer the error outright (the label out of range for this very head): the
    guesses from the message alone, which could not see the head, are dropped."""
    guesses = {id(c) for c in message_causes}
    diagnosis.causes = [c for c in diagnosis.causes if id(c) not in guesses]


def _drop_guesses_about_missing_modules(
    diagnosis: Diagnosis, message_causes: list[Cause], model: Any
) -> None:
    """A message-only cause about a module the live model does not have is wrong for this model."""
    paths = {name for name, _ in model.named_modules()}
    guesses = {id(c) for c in message_causes}
    for cause in list(diagnosis.causes):
        if id(cause) in guesses and cause.module and cause.module not in paths:
            diagnosis.causes.remove(cause)
            diagnosis.facts.append(
                f"`{type(model).__name__}` has no module `{cause.module}`: that guess is dropped"
            )


def _live_outranks_message(diagnosis: Diagnosis, message_causes: list[Cause]) -> None:
    """A guess from the message alone never outranks a live cause that names the module at fault."""
    guesses = {id(c) for c in message_causes}
    live = [c.confidence for c in diagnosis.causes if id(c) not in guesses and c.module is not None]
    if live and max(live) >= 0.8:
        for cause in diagnosis.causes:
            if id(cause) in guesses and cause.module is None and cause.confidence >= max(live):
                cause.confidence = round(max(live) - 0.05, 2)
    diagnosis.ranked()


def _note_disagreement(diagnosis: Diagnosis, message_top: Cause) -> None:
    """When the live objects overrule what the message alone suggested, the facts say so."""
    live = diagnosis.causes[0]
    if message_top.module is None or live is message_top or _same_culprit(live, message_top):
        return
    note = (
        f"the message alone suggests {_where(message_top)}, but the live objects show {_where(live)}: "
        "the live evidence is ranked first"
    )
    if note not in diagnosis.facts:
        diagnosis.facts.append(note)


def _same_culprit(a: Cause, b: Cause) -> bool:
    """Two causes name the same culprit when one's module (or module.attribute) is, or is inside, the other's."""
    if a.module is None or b.module is None:
        return False

    def names(c: Cause) -> set[str]:
        return {c.module, f"{c.module}.{c.attribute}".lstrip(".")} if c.attribute else {c.module}

    return any(x == y or x.startswith(y + ".") or y.startswith(x + ".") for x in names(a) for y in names(b))


def _where(cause: Cause) -> str:
    where = f"`{cause.module or '<model>'}`" if cause.module is not None else "a cause outside the model"
    return where + (f".`{cause.attribute}`" if cause.attribute and cause.module is not None else "")
