"""``check``: the pre-flight of a model. The family's head lint plus a shape trace on the meta device.

Nothing here changes the user's model: the lint reads attributes, the trace runs on a meta replica
(see ``trace.py``), and size probing (``sizes.py``) runs only when the trace failed for no head reason.
When the trace raised, ``check`` explains the error and enriches it with what the family knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.diagnosis import Diagnosis, Problem
from headfit.enrich import enrich
from headfit.errors import UsageError
from headfit.explain import explain
from headfit.inputs import float_dtype, input_hw, positional_inputs, shape_text
from headfit.sizes import SizeAnswer, sizes
from headfit.spec import require_module
from headfit.trace import ModuleCall, TraceResult, trace

if TYPE_CHECKING:
    from torch import nn

    from headfit.weights import ShapeComparison


@dataclass
class CheckReport:
    """The answer of ``check``; ``to_dict()`` is the check document of the contract."""

    model: str
    family: str
    inputs: list[str]  # the positional inputs traced, in --input syntax
    problems: list[Problem] = field(default_factory=list)
    trace: TraceResult = field(default_factory=lambda: TraceResult(False))
    diagnosis: Diagnosis | None = None  # the explained, enriched error when the trace raised
    depth: int | None = None  # modules deeper than this are left out of the document
    sizes: SizeAnswer | None = None  # when the trace failed on a size the model does not accept
    notes: list[str] = field(default_factory=list)  # what check could not do (a family that failed)
    weights: ShapeComparison | None = None  # a saved model's file against the model its sidecar rebuilds

    @property
    def ok(self) -> bool:
        return not self.problems

    def calls_within(self, depth: int | None) -> list[ModuleCall]:
        """The traced calls of modules at most ``depth`` levels deep (all of them for None)."""
        return [c for c in self.trace.calls if within_depth(c.module, depth)]

    def findings(self) -> list[Problem | Diagnosis]:
        """The problems and the trace's diagnosis as they are printed: each fix once.

        Problems that share ``(module, attribute, fix)`` merge into the first (HF240, "the trace raised
        here", folds into the lint problem that explains why), which gains their summaries and facts.
        A diagnosis cause whose ``(module, attribute, fix)`` a problem already carries keeps its rank
        and summary; its fix points at that problem instead. The report itself is unchanged.
        """
        shown: dict[tuple[str | None, str | None, str], Problem] = {}
        found: list[Problem | Diagnosis] = []
        for problem in self.problems:
            key = (problem.module, problem.attribute, problem.fix or "")
            first = shown.get(key) if problem.fix else None
            if first is None:
                shown[key] = replace(problem, facts=list(problem.facts))
                found.append(shown[key])
            else:
                first.facts.extend(_merged_facts(first, problem))
        if self.diagnosis is not None:
            found.append(_without_shown_fixes(self.diagnosis, shown))
        return found

    def to_dict(self) -> dict[str, Any]:
        trace_doc = self.trace.to_dict()
        trace_doc["modules"] = [m for m in trace_doc["modules"] if within_depth(m["module"], self.depth)]
        trace_doc["notes"] = list(self.trace.notes)
        return {
            "model": self.model,
            "ok": self.ok,
            "family": self.family,
            "inputs": self.inputs,
            "problems": [p.to_dict() for p in self.problems],
            "trace": trace_doc,
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "sizes": self.sizes.to_dict() if self.sizes else None,
            "notes": list(self.notes),
            "weights": self.weights.to_dict() if self.weights else None,
        }


def _merged_facts(first: Problem, other: Problem) -> list[str]:
    """What ``other`` adds to ``first``: its code and summary, then its facts that ``first`` lacks."""
    facts = [f"{other.code}: {other.summary}"]
    facts.extend(f for f in other.facts if f not in first.facts and first.summary not in f)
    return facts


def _without_shown_fixes(
    diagnosis: Diagnosis, shown: dict[tuple[str | None, str | None, str], Problem]
) -> Diagnosis:
    causes = []
    for cause in diagnosis.causes:
        problem = shown.get((cause.module, cause.attribute, cause.fix or "")) if cause.fix else None
        if problem is not None:
            cause = replace(cause, fix=f"the fix of error[{problem.code}] above")
        causes.append(cause)
    return replace(diagnosis, causes=causes)


def check(
    model: nn.Module,
    inputs: Any = None,
    *,
    depth: int | None = None,
    name: str | None = None,
    train: bool = False,
) -> CheckReport:
    """Lint ``model``'s heads and trace it on the meta device at ``inputs``.

    ``inputs``: None (the family's usual input), an InputSpec or spec string (``2x3x224x224``,
    ``[3x800x1333]x2``), a tensor (its shape is used), a list of images (tensors) for a detector, or a
    tuple of any of these for a model with several positional inputs. A list of spec strings or
    InputSpecs is several positional inputs too. ``train=True`` traces the train-mode forward
    (BatchNorm batch statistics, dropout) on the replica; the model's own mode is left alone.
    """
    from headfit.families import family_for

    require_module(model, "check")
    family = family_for(model)
    notes: list[str] = []
    defaults = _ask(family, "default_inputs", model, notes, None) if inputs is None else None
    if inputs is None and defaults is None:
        raise UsageError(
            f"the {family.name} family has no usual input for `{type(model).__name__}`: give one, "
            "e.g. `--input 2x3x224x224` or `check(model, '2x3x224x224')`."
        )
    args, shown = positional_inputs(inputs, defaults, float_dtype=float_dtype(model))
    report = CheckReport(name or type(model).__name__, family.name, shown, depth=depth, notes=notes)
    report.problems = list(_ask(family, "lint", model, notes, []))
    head_paths = [h.path for h in _ask(family, "heads", model, notes, [])]
    report.trace = trace(model, args, head_paths=head_paths, train=train, simulate=family.selects_by_value)
    report.problems = _drop_contradicted_widths(model, report.problems, report.trace, notes)
    if report.trace.failed:
        report.diagnosis = trace_diagnosis(model, report.trace)
        report.problems.append(_trace_problem(model, report, args, guessed=inputs is None))
    return report


def trace_diagnosis(model: nn.Module, traced: TraceResult) -> Diagnosis:
    """``explain``'s diagnosis of the error the trace raised, enriched with what the live model says
    about the module it stopped in (and the shapes that reached it)."""
    diagnosis = _explained(traced.error)
    if diagnosis.user_location and _is_headfit_file(diagnosis.user_location.file):
        diagnosis.user_location = None  # the "user" frame would be the trace itself
    call = traced.stopped_call()
    try:
        return enrich(
            diagnosis, model, traced.stopped_at or "", input_shapes=call.input_shapes if call else None
        )
    except Exception:  # a family's evidence must never hide the user's own error
        return diagnosis


def _explained(exc: BaseException) -> Diagnosis:
    try:
        diagnosis = explain(exc)
    except Exception:  # the message parser may not know this error: keep the plain facts
        diagnosis = None
    if diagnosis is not None and diagnosis.recognised:
        return diagnosis
    return Diagnosis(
        code="HF240",
        category="trace_failed",
        error_type=type(exc).__name__,
        message=str(exc),
        summary="the forward pass raised during the shape trace",
    )


def _is_headfit_file(path: str | None) -> bool:
    return path is not None and Path(__file__).parent in Path(path).resolve().parents


def _drop_contradicted_widths(
    model: nn.Module, problems: list[Problem], traced: TraceResult, notes: list[str]
) -> list[Problem]:
    """Lint infers the width reaching a layer from the model's structure; the trace saw it. When every
    traced call of the layer received exactly the width it takes, the structural guess was wrong (a
    parallel branch, not a trunk) and the trace wins."""
    kept = []
    for problem in problems:
        if problem.attribute in ("in_features", "in_channels") and _trace_fits(model, problem, traced):
            notes.append(
                f"lint doubted `{problem.module}`.`{problem.attribute}`, but the trace fed it exactly "
                "that width: not reported"
            )
            continue
        kept.append(problem)
    return kept


def _trace_fits(model: nn.Module, problem: Problem, traced: TraceResult) -> bool:
    try:
        expected = getattr(model.get_submodule(problem.module), problem.attribute)
    except AttributeError:
        return False
    axis = -1 if problem.attribute == "in_features" else 1  # Linear: last dim; conv: channels
    shapes = [c.input_shapes[0] for c in traced.calls if c.module == problem.module and c.input_shapes]
    return bool(shapes) and all(len(s) > max(axis, 0) and s[axis] == expected for s in shapes)


def _ask(family: Any, method: str, model: nn.Module, notes: list[str], fallback: Any) -> Any:
    """Call a family method; a family's own bug becomes a note, never a traceback of the user's check."""
    try:
        return getattr(family, method)(model)
    except UsageError:
        raise
    except Exception as exc:
        notes.append(
            f"headfit's {family.name} family failed in `{method}` ({type(exc).__name__}: {exc}); "
            "that part of the check was skipped. Please report it."
        )
        return fallback


def within_depth(path: str, depth: int | None) -> bool:
    """Whether a module path is at most ``depth`` levels below the model (the model itself is level 0)."""
    return depth is None or path == "" or path.count(".") < depth


def _trace_problem(
    model: nn.Module, report: CheckReport, args: tuple[Any, ...], guessed: bool = False
) -> Problem:
    """HF240 for a forward that raised, pointing at the most likely culprit (where it raised is a fact);
    HF241 when the input size is one the model does not accept. ``guessed``: no input was given, the
    family guessed one, and the failure may be the guess's rather than the model's."""
    result = report.trace
    size_problem = _size_problem(model, report, args) if not report.problems else None
    if size_problem is not None:
        return size_problem
    diagnosis = report.diagnosis
    top = diagnosis.causes[0] if diagnosis and diagnosis.causes else None
    where = f"`{result.stopped_at}`" if result.stopped_at else "the model's own forward"
    facts = [result.reason or "the forward raised"]
    call = result.stopped_call()
    if call is not None:
        facts.append(f"{where} ({call.type}) received {_shapes_text(call.input_shapes)}")
    if top is not None:
        facts.append(f"most likely: {top.summary}")
    fix = top.fix if top else _missing_inputs_fix(model, report)
    if guessed:
        shown, name = " ".join(report.inputs), type(model).__name__
        facts.append(f"no input was given: {shown} is headfit's default input for `{name}`")
        hint = f"--input SPEC  # the input `{name}` takes, if not {shown}"
        if top is not None and top.fix and _raised_on_the_input(result):
            facts.append(f"it raised where the default input arrived; if that input is right: {fix}")
            fix = hint
        fix = fix or hint
    culprit = top if top is not None and top.module is not None else None  # not always where it raised
    return Problem(
        code="HF240",
        module=culprit.module if culprit else result.stopped_at or "",
        attribute=culprit.attribute if culprit else None,
        summary=f"the shape trace raised in {where}",
        facts=facts,
        fix=fix,
    )


def _raised_on_the_input(result: TraceResult) -> bool:
    """Whether the module that raised received the model's own input unchanged (the first consumer of
    a guessed input: the guess, not the model, is then the likelier culprit)."""
    call, root = result.stopped_call(), next((c for c in result.calls if c.module == ""), None)
    return call is not None and (
        call.module == "" or (root is not None and call.input_shapes == root.input_shapes)
    )


def _missing_inputs_fix(model: nn.Module, report: CheckReport) -> str | None:
    """``forward() missing 1 required positional argument``: give one input per argument of forward."""
    import inspect
    import re

    if report.trace.stopped_at or not re.search(
        r"forward\(\) missing \d+ required", report.trace.reason or ""
    ):
        return None
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    required = [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    example = report.inputs[0] if report.inputs else "2x3x224x224"
    flags = " ".join(f"--input {example}" for _ in required)
    return f"{flags}  # one --input per argument of forward({', '.join(required)})"


def _size_problem(model: nn.Module, report: CheckReport, args: tuple[Any, ...]) -> Problem | None:
    """When the lint is clean, ask ``sizes`` whether the traced H x W is one the model rejects."""
    hw = input_hw(args)
    if hw is None:
        return None
    answer = sizes(model, args)
    result = report.trace
    if not answer.accepted_any or answer.accepts(*hw):
        return None
    report.sizes = answer
    good_h, good_w = answer.nearest(*hw)
    return Problem(
        code="HF241",
        module=result.stopped_at or "",
        summary=f"the model does not accept {hw[0]}x{hw[1]} inputs",
        facts=[result.reason or "the forward raised", f"accepted sizes: {answer.summary}"],
        fix=f"x = torch.nn.functional.interpolate(x, size=({good_h}, {good_w}))  # or crop/pad to {good_h}x{good_w}",
    )


def _shapes_text(shapes: list[list[int]]) -> str:
    return ", ".join(shape_text(s, "list") for s in shapes) or "no tensors"
