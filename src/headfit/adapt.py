"""Re-head a model for K classes in place, and prove it works (``verify.py``).

``adapt(model, K)`` asks the model's family (``families/``) to replace the class-dependent layers in
place, then verifies the result without changing anything else. ``AdaptOptions`` carries what
headfit itself reads (classes to keep, class names, whether to verify); everything else is the
family's (``num_keypoints``, ``head``), passed to it verbatim and stored in the sidecar of a saved
model (``saved.py``), so the same re-head can be repeated when the model is rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from headfit.errors import UsageError, VerificationError
from headfit.families import AdaptSummary, Family, family_for
from headfit.spec import check_class_count, require_module
from headfit.verify import Verification, check_unchanged_outside, snapshot, verify_adapted

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class AdaptOptions:
    """How to re-head, apart from the class count: headfit's own options and the family's.

    ``keep_classes`` (ids or names of the pretrained head's classes, one per new class) starts the new
    rows from those pretrained rows. ``source_names`` names the pretrained head's rows when headfit
    does not know them (it knows COCO, VOC, ImageNet-1k and Kinetics-400). ``family`` goes to the
    family's ``adapt`` as keywords (``num_keypoints`` for Keypoint R-CNN, ``head`` for your own model).
    """

    keep_classes: Sequence[int | str] | None = None
    class_names: Sequence[str] | None = None
    source_names: Sequence[str] | None = None
    verify: bool = True
    family: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, **options: Any) -> AdaptOptions:
        """Options from keywords: headfit's own by name, every other keyword is the family's."""
        own = {f.name for f in fields(cls)} - {"family"}
        family = {k: v for k, v in options.items() if k not in own and v is not None}
        return cls(**{k: v for k, v in options.items() if k in own}, family=family)


@dataclass
class AdaptReport:
    """What ``adapt`` did to a model, in data (the CLI prints it, the sidecar stores it)."""

    family: str
    num_classes: int
    head_outputs: int
    background: bool
    replaced: list[str]
    attributes: dict[str, Any]
    notes: list[str]
    kept_classes: list[int] = field(default_factory=list)  # pretrained rows the new rows started from
    kept_names: list[str] | None = None  # their pretrained names, when known
    class_names: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the family's options, to rebuild the model
    verification: Verification | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adapt(
    model: nn.Module,
    num_classes: int,
    *,
    keep_classes: Sequence[int | str] | None = None,
    class_names: Sequence[str] | None = None,
    source_names: Sequence[str] | None = None,
    verify: bool = True,
    **family_options: Any,
) -> nn.Module:
    """Re-head ``model`` in place for ``num_classes`` object classes and return it.

    ``num_classes`` counts object classes only; the background is added where the family counts it
    (torchvision R-CNN and SSD), so ``adapt(fasterrcnn, 3)`` gives a box predictor with 4 outputs.
    Every pretrained weight that still fits is kept. ``family_options`` go to the model's family:
    ``num_keypoints=K`` (Keypoint R-CNN), ``head="path.to.layer"`` (your own model). See
    ``AdaptOptions`` for the others. Raises ``UsageError`` for bad arguments and
    ``VerificationError`` when the re-headed model does not work; ``adapt_with_report`` also returns
    what was done.

    >>> model = torchvision.models.resnet18(weights=None)  # doctest: +SKIP
    >>> headfit.adapt(model, 3).fc  # doctest: +SKIP
    Linear(in_features=512, out_features=3, bias=True)
    """
    options = AdaptOptions(keep_classes, class_names, source_names, verify, family_options)
    return adapt_with_report(model, num_classes, options)[0]


def adapt_with_report(
    model: nn.Module, num_classes: int, options: AdaptOptions | None = None, **keywords: Any
) -> tuple[nn.Module, AdaptReport]:
    """``adapt`` that also returns its ``AdaptReport``; takes an ``AdaptOptions`` or ``adapt``'s keywords."""
    require_module(model, "adapt")
    if options is not None and keywords:
        raise UsageError("give either an AdaptOptions or keyword options, not both")
    options = options or AdaptOptions.of(**keywords)
    report = adapt_unverified(model, num_classes, options)
    if options.verify:
        report.verification = verify_adapted(
            model, report.replaced, report.num_classes, report.head_outputs, report.verification
        )
        raise_if_failed(report)
    return model, report


def raise_if_failed(report: AdaptReport) -> None:
    check = report.verification
    if check is not None and not check.ok:
        raise VerificationError(
            f"the re-headed model failed verification: {'; '.join(check.failures)}. This is a bug in "
            f"headfit's `{report.family}` family; please report it with the model spec"
        )


def adapt_unverified(model: nn.Module, num_classes: int, options: AdaptOptions) -> AdaptReport:
    """Re-head, and record whether anything outside the replaced layers changed."""
    before = snapshot(model)
    report = rehead(model, num_classes, options)
    report.verification = Verification()
    check_unchanged_outside(model, before, report.replaced, report.verification)
    return report


def rehead(model: nn.Module, num_classes: int, options: AdaptOptions) -> AdaptReport:
    """The family's re-head with headfit's checks of the options; nothing is verified."""
    check_class_count(num_classes)
    family = family_for(model)
    source_outputs = source_head_outputs(family, model)
    keep, kept_names = _resolve_keep(family, model, options, num_classes, source_outputs)
    names = _class_names(options.class_names, kept_names, num_classes)
    family_options = {k: v for k, v in options.family.items() if v is not None}
    summary = family.adapt(model, num_classes, keep=keep, **family_options)
    report = _report(family, summary, keep, names, family_options)
    report.kept_names = kept_names
    return report


def source_head_outputs(family: Family, model: nn.Module) -> int | None:
    """How many rows the current (pretrained) head has, background included where it is counted."""
    count = family.num_classes(model)
    if count is not None:
        return count + int(family.counts_background)
    heads = family.heads(model)
    return heads[0].outputs if heads else None


def _resolve_keep(
    family: Family, model: nn.Module, options: AdaptOptions, num_classes: int, source_outputs: int | None
) -> tuple[list[int] | None, list[str] | None]:
    """``keep_classes`` as source-head rows, and the names of those rows when known."""
    from headfit import classnames

    keep_classes = options.keep_classes
    if not keep_classes:
        return None, None
    if len(keep_classes) != num_classes:
        raise UsageError(
            f"`keep_classes` lists {len(keep_classes)} classes but you asked for {num_classes}: give one "
            "pretrained class (id or name) per new class, in the new order"
        )
    if source_outputs is None:
        raise UsageError(f"cannot tell how many classes the pretrained head of `{type(model).__name__}` has")
    names = list(options.source_names or classnames.source_categories(source_outputs) or []) or None
    rows = classnames.resolve_keep(list(keep_classes), names, source_outputs, family.counts_background)
    return rows, ([names[r] for r in rows] if names and len(names) == source_outputs else None)


def _class_names(given: Sequence[str] | None, kept: list[str] | None, num_classes: int) -> list[str] | None:
    if given is None:
        return kept
    if len(given) != num_classes:
        raise UsageError(
            f"{len(given)} class names given for {num_classes} classes: give exactly one name per class"
        )
    return list(given)


def _report(
    family: Family, summary: AdaptSummary, keep: list[int] | None, names: list[str] | None, options: dict
) -> AdaptReport:
    return AdaptReport(
        family=summary.family or family.name,
        num_classes=summary.num_classes,
        head_outputs=summary.head_outputs,
        background=bool(family.counts_background),
        replaced=list(summary.replaced),
        attributes=dict(summary.attributes),
        notes=list(summary.notes),
        kept_classes=list(keep or []),
        class_names=names,
        options=options,
    )
