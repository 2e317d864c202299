"""``sizes``: which input sizes a model accepts, by reading it (the family's ``size_rule``) and by probing.

A probe is a shape trace on the meta device at one H x W (see ``trace.py``): no memory, a few
milliseconds to a few tenths of a second each. The search is bounded: one reference size, the step
between accepted sizes (``R+1``, ``R+2``, ``R+4``... is the first that works), a binary search for the
smallest accepted size, and one non-square size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headfit.errors import UsageError
from headfit.inputs import float_dtype, input_hw, positional_inputs, resized, shape_text
from headfit.modulepath import module_name

if TYPE_CHECKING:
    from torch import nn

    from headfit.families import SizeRule

_FALLBACK_SIZES = (224, 256, 299, 320, 512, 64, 32, 384, 800)
_STEPS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class SizeAnswer:
    """The sizes a model accepts; ``summary`` says it in words ("H and W multiples of 32, >= 64")."""

    summary: str
    accepted_any: bool
    model: str = ""  # the model's name, as the caller gave it (a MODEL spec) or its class name
    exact: tuple[int, int] | None = None
    multiple_of: int | None = None
    minimum: int | None = None
    resized_internally: bool = False
    square_only: bool = False
    notes: list[str] = field(default_factory=list)
    probes: list[tuple[int, int, bool]] = field(default_factory=list)  # (H, W, accepted)

    def accepts(self, height: int, width: int) -> bool:
        """Whether the answer admits H x W (an exact probe result wins over the rule)."""
        for h, w, ok in self.probes:
            if (h, w) == (height, width):
                return ok
        if not self.accepted_any:
            return False
        if self.resized_internally:
            return True
        if self.exact is not None:
            return (height, width) == self.exact
        if self.square_only and height != width:
            return False
        step, low = self.multiple_of or 1, self.minimum or 1
        return all(d % step == 0 and d >= low for d in (height, width))

    def nearest(self, height: int, width: int) -> tuple[int, int]:
        """The accepted size closest to H x W (for a ``help:`` line)."""
        if self.exact is not None:
            return self.exact
        step, low = self.multiple_of or 1, self.minimum or 1
        h, w = (max(low, round(d / step) * step) for d in (height, width))
        return (max(h, w), max(h, w)) if self.square_only else (h, w)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "summary": self.summary,
            "accepted_any": self.accepted_any,
            "exact": list(self.exact) if self.exact else None,
            "multiple_of": self.multiple_of,
            "minimum": self.minimum,
            "resized_internally": self.resized_internally,
            "square_only": self.square_only,
            "notes": self.notes,
            "probes": [{"height": h, "width": w, "accepted": ok} for h, w, ok in self.probes],
        }


def sizes(
    model: nn.Module, inputs: Any = None, *, max_probes: int = 24, name: str | None = None
) -> SizeAnswer:
    """Which H x W ``model`` accepts, probing at most ``max_probes`` sizes on the meta device.

    ``inputs`` takes what ``check`` takes; its first image-like input is resized for each probe.
    ``name`` names the model in the answer (default: its class name).
    """
    from headfit.families import family_for

    family = family_for(model)
    defaults = family.default_inputs(model) if inputs is None else None
    args, _ = positional_inputs(inputs, defaults, float_dtype=float_dtype(model))
    reference = input_hw(args)
    if reference is None:
        raise UsageError(
            f"`{type(model).__name__}` takes no image-like input (no tensor with height and width among "
            f"{_shapes(args)}), so input sizes do not apply. Give an image input with --input, e.g. `2x3x224x224`."
        )
    prober = _Prober(model, args, max_probes, [h.path for h in family.heads(model)])
    rule = family.size_rule(model)
    answer = _from_rule(prober, rule, reference) or _search(prober, reference)
    rule_notes = [n for n in (rule.notes if rule else []) if n not in answer.summary]
    answer.notes = [*rule_notes, *answer.notes]
    answer.probes = list(prober.results.items_list())
    answer.model = name or type(model).__name__
    return answer


class _Results(dict):
    def items_list(self) -> list[tuple[int, int, bool]]:
        return [(h, w, ok) for (h, w), ok in self.items()]


class _Prober:
    """Traces one meta replica at H x W, remembering every answer and counting the probes."""

    def __init__(
        self, model: nn.Module, args: tuple[Any, ...], max_probes: int, head_paths: list[str]
    ) -> None:
        from headfit.trace import meta_replica

        self.model = model
        self.replica = meta_replica(model)
        self.args = args
        self.max_probes = max_probes
        self.head_paths = head_paths
        self.results = _Results()
        self.failures: list[tuple[str, str]] = []  # (module that raised, the error's first line)

    @property
    def exhausted(self) -> bool:
        return len(self.results) >= self.max_probes

    def __call__(self, height: int, width: int | None = None) -> bool:
        from headfit.trace import trace

        key = (height, height if width is None else width)
        if key not in self.results:
            if self.exhausted:
                return False
            result = trace(
                self.model,
                resized(self.args, *key),
                head_paths=self.head_paths,
                replica=self.replica,
            )
            self.results[key] = not result.failed
            if result.failed:
                self.failures.append((result.stopped_at or "", result.reason or ""))
        return self.results[key]

    def same_failure(self) -> tuple[str, str] | None:
        """The module every failed probe stopped in, with the first probe's error, when they agree."""
        modules = {module for module, _ in self.failures}
        return self.failures[0] if len(modules) == 1 else None


def _from_rule(probe: _Prober, rule: SizeRule | None, reference: tuple[int, int]) -> SizeAnswer | None:
    """Confirm what the family read from the model with two probes; None when probing must decide."""
    if rule is None:
        return None
    if rule.resized_internally:
        at_reference, at_odd_size = probe(*reference), probe(97, 131)
        if at_reference and at_odd_size:
            summary = "any size: " + "; ".join(rule.notes)
            return SizeAnswer(summary, True, resized_internally=True, minimum=rule.minimum)
        if not at_reference and not at_odd_size:  # resized inputs all fail alike: no size would help
            return _nothing_accepted(probe)
    if rule.exact is not None:
        h, w = rule.exact
        if probe(h, w) and not probe(h + 32, w + 32):
            return SizeAnswer(f"exactly {h}x{w}", True, exact=(h, w))
    return None


def _search(probe: _Prober, reference: tuple[int, int]) -> SizeAnswer:
    start = next((s for s in (max(reference), *_FALLBACK_SIZES) if probe(s)), None)
    if start is None:
        return _nothing_accepted(probe)
    step = next((k for k in _steps(start) if probe(start + k)), None)
    if step is None:
        return SizeAnswer(f"exactly {start}x{start}", True, exact=(start, start))
    minimum = _smallest(probe, start, step)
    square_only = not probe(minimum, minimum + step) and not probe(start, start + step)
    return SizeAnswer(
        _wording(step, minimum, square_only),
        True,
        multiple_of=step,
        minimum=minimum,
        square_only=square_only,
        notes=_budget_note(probe),
    )


def _nothing_accepted(probe: _Prober) -> SizeAnswer:
    """Say where the probes failed: one module failing at every size is a model bug, not a size rule."""
    tried = ", ".join(f"{h}x{w}" for h, w, _ in probe.results.items_list())
    answer = SizeAnswer(f"no probed size is accepted (tried {tried})", False)
    same = probe.same_failure()
    if same is not None:
        module, reason = same
        where = f"`{module_name(module)}`" if module else "the model's own forward"
        answer.notes.append(f"every probe failed in {where}, at every size: {reason}")
        answer.notes.append("that is not a size rule: `headfit check` diagnoses it")
    return answer


def _steps(accepted: int) -> list[int]:
    """Candidate steps between accepted sizes: powers of two (strided CNNs, U-Nets), then the larger
    divisors of the accepted size (MaxViT's 7x7 windows at stride 32 need multiples of 224)."""
    return [*_STEPS, *(d for d in range(_STEPS[-1] + 1, accepted + 1) if accepted % d == 0)]


def _smallest(probe: _Prober, accepted: int, step: int) -> int:
    """Binary search for the smallest accepted multiple of ``step`` (feature maps vanish below it)."""
    low, high = 1, accepted // step  # high * step is accepted
    while low < high and not probe.exhausted:
        middle = (low + high) // 2
        if probe(middle * step):
            high = middle
        else:
            low = middle + 1
    return high * step


def _wording(step: int, minimum: int, square_only: bool) -> str:
    if step == 1:
        text = "any size" if minimum <= 1 else f"any size >= {minimum}"
    else:
        text = f"H and W multiples of {step}, >= {minimum}"
    return text + (", with H = W" if square_only else "")


def _budget_note(probe: _Prober) -> list[str]:
    if probe.exhausted:
        return [f"probing stopped after {probe.max_probes} sizes; the minimum may be lower"]
    return []


def _shapes(args: tuple[Any, ...]) -> str:
    from headfit.trace import shapes_of

    return ", ".join(shape_text(s) for s in shapes_of(args)) or "no tensors"
