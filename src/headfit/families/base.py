"""The protocol every model family answers, like timm's ``get_classifier()`` / ``reset_classifier()``.

A family recognises its models, lists their heads and the invariants between heads and attributes,
re-heads them for K classes, and adds what it knows to a diagnosis of a failure inside them: it is the
one owner of its knowledge (which labels are valid, whether the background is counted, what a target
must look like). Each family lives in its own module in ``headfit/families/`` and registers itself with
``@register_family``; adding a family means adding one file.

The base class implements what families share: head outputs from ``num_classes`` and
``counts_background``, the valid labels and the class count a label needs, the validation of adapt
options, and the default live evidence (every lint problem as a cause). Fixes always name the model
``model``; ``enrich`` rewrites that into the user's own variable name.

This module and ``headfit.families`` stay torch-free at import: ``explain`` reads ``families/_facts.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from headfit.diagnosis import Cause, Diagnosis, Problem
from headfit.errors import UsageError
from headfit.inputs import InputSpec
from headfit.smoke import SmokeBatch, default_output_classes, default_smoke_batch, default_smoke_loss

if TYPE_CHECKING:
    from torch import nn

HeadKind = Literal[
    "classifier",
    "aux_classifier",
    "distillation_classifier",
    "box_classifier",
    "box_regressor",
    "mask",
    "keypoint",
]


@dataclass
class HeadInfo:
    """One class-dependent layer of a model and the attributes that must agree with it."""

    path: str  # module path in model.named_modules()
    kind: HeadKind
    outputs: int  # classes (or keypoints) the layer produces now, background included where counted
    attributes: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. {"head.classification_head.num_classes": 91}


@dataclass
class AdaptSummary:
    """What ``Family.adapt`` did, in data: enough to verify it and to tell the user in plain words."""

    family: str
    num_classes: int  # what the user asked for (object classes, without background)
    head_outputs: int  # what the heads now produce (K+1 where the family counts background)
    replaced: list[str] = field(default_factory=list)  # module paths of the new layers
    attributes: dict[str, Any] = field(default_factory=dict)  # attribute path -> new value
    notes: list[str] = field(default_factory=list)  # plain-language notes ("counts background: ...")
    kept_rows: list[int] = field(default_factory=list)  # source-head rows copied into the new head


@dataclass
class Evidence:
    """What reading the live objects adds to a diagnosis: facts with numbers, and causes with fixes."""

    facts: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)


@dataclass(frozen=True)
class ImageSize:
    """The size a model resizes its inputs to (torchvision's ``GeneralizedRCNNTransform`` settings)."""

    min_size: tuple[int, ...] = ()  # the shorter side; in training one is picked per image
    max_size: int | None = None  # the cap on the longer side
    fixed: tuple[int, int] | None = None  # (H, W) when every image is resized to exactly this (SSD)

    @classmethod
    def square(cls, size: int) -> ImageSize:
        """``--imgsz S``: the longer side becomes S (as YOLO's imgsz and headfit's checkpoints mean it)."""
        return cls(min_size=(size,), max_size=size)

    def __str__(self) -> str:
        if self.fixed is not None:
            return f"{self.fixed[0]}x{self.fixed[1]} (fixed)"
        short = "/".join(str(s) for s in self.min_size)
        return f"shorter side {short}, longer side <= {self.max_size}"


@dataclass(frozen=True)
class Recipe:
    """A published training recipe's lr and the total batch it was stated for (lr scales from it)."""

    lr: float
    batch: int
    source: str  # where the numbers come from, e.g. "torchvision's Faster R-CNN recipe"


@dataclass
class SizeRule:
    """Which input sizes a model accepts, as far as the family can tell by reading the model."""

    exact: tuple[int, int] | None = None  # (H, W) when only one size works
    multiple_of: int | None = None
    minimum: int | None = None
    resized_internally: bool = False  # detection transforms resize any size
    notes: list[str] = field(default_factory=list)


class Family:
    """Base class of the per-family modules. Override what the family knows; defaults are 'nothing'."""

    name: ClassVar[str] = "base"
    priority: ClassVar[int] = 50  # lower is asked first; the generic fallback is last
    counts_background: ClassVar[bool] = False  # torchvision R-CNN/SSD heads include a background class
    # the forward selects by value (NMS, masks on scores) before its heads run, so a plain meta trace
    # stops early and runs again simulated: trace simulated from the start (one forward, not two)
    selects_by_value: ClassVar[bool] = False
    examples: ClassVar[tuple[str, ...]] = ()  # one or two MODEL specs (the contract test builds each)
    adapt_options: ClassVar[tuple[str, ...]] = ("keep",)  # what ``adapt`` takes besides ``num_classes``
    aux_loss_weight: ClassVar[float | None] = None  # weight of an auxiliary head's loss in training
    takes_targets: ClassVar[bool] = False  # forward(images, targets) computes the loss (detectors)
    lint_confidence: ClassVar[tuple[float, float]] = (0.9, 0.7)  # a lint cause in / away from the failure

    # -- recognition and heads -------------------------------------------------------------------------

    def recognises(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        return []

    def num_classes(self, model: nn.Module) -> int | None:
        """The user-level class count the heads produce now (without background where it is counted)."""
        return None

    def head_outputs(self, model: nn.Module) -> int | None:
        """Columns of the class head now: ``num_classes`` plus the background where it is counted."""
        count = self.num_classes(model)
        return None if count is None else self.outputs_for(count)

    def outputs_for(self, num_classes: int) -> int:
        """Head columns for ``num_classes`` object classes."""
        return num_classes + int(self.counts_background)

    def classes_for_label(self, label: int) -> int:
        """The ``num_classes`` (object classes, as ``adapt`` takes them) that make ``label`` valid."""
        return label if self.counts_background else label + 1

    def valid_labels(self, num_classes: int) -> str:
        """The target labels a head for ``num_classes`` object classes accepts, in words."""
        if self.counts_background:
            return f"1..{num_classes} (0 is the background)"
        return f"0..{num_classes - 1}"

    # -- lint ------------------------------------------------------------------------------------------

    def lint(self, model: nn.Module) -> list[Problem]:
        """Head invariants that do not hold, without running the model."""
        return []

    # -- inputs and sizes ------------------------------------------------------------------------------

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        """The positional inputs a shape trace uses when the user gives none."""
        return [InputSpec.batch(2, 3, 224, 224)]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        return None

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """Re-head ``model`` in place for ``num_classes`` object classes and say what changed."""
        raise NotImplementedError(f"headfit cannot adapt {type(model).__name__} models yet")

    def checked_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` if this family declares every one in ``adapt_options``; else a UsageError."""
        unknown = sorted(set(options) - set(self.adapt_options))
        if unknown:
            names = ", ".join(f"`{n}`" for n in unknown)
            takes = ", ".join(f"`{n}`" for n in ("num_classes", *self.adapt_options))
            raise UsageError(
                f"the {self.name} family does not understand the adapt option(s) {names}; it takes {takes}"
            )
        return options

    # -- smoke step (verification after adapt) ---------------------------------------------------------

    def smoke_batch(self, model: nn.Module, num_classes: int) -> SmokeBatch:
        """A tiny synthetic batch for one real train step after ``adapt`` (see ``headfit/smoke.py``)."""
        return default_smoke_batch(self, model, num_classes)

    def smoke_context(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """Temporary settings for the smoke step (e.g. a detector's resize to 800 px made small)."""
        return contextlib.nullcontext()

    def smoke_loss(self, model: nn.Module, output: Any, batch: SmokeBatch) -> Any:
        """The scalar loss of a train-mode ``output`` for ``batch`` (a torch scalar tensor)."""
        return default_smoke_loss(self, model, output, batch)

    def output_classes(self, model: nn.Module, output: Any) -> int | None:
        """How many classes an eval-mode ``output`` carries (to verify a re-headed model)."""
        return default_output_classes(self, model, output)

    # -- training --------------------------------------------------------------------------------------
    # What `headfit train` (headfit/train/) asks of a family. The defaults describe a model this
    # family does not know how to train: `task` None makes `headfit train` refuse it in one paragraph.

    task: ClassVar[str | None] = None  # the training task for this family's models ("detection")

    def loss_terms(self, model: nn.Module, output: Any) -> dict[str, Any]:
        """The named scalar losses of a train-mode forward's ``output``; the loop sums them."""
        if isinstance(output, dict):
            return dict(output)
        if isinstance(output, tuple) and output and isinstance(output[0], dict):  # scripted: (losses, dets)
            return dict(output[0])
        return {"loss": output}

    def training_recipe(self, model: nn.Module) -> Recipe | None:
        """The reference lr and batch for this kind of model, or None when the family knows none."""
        return None

    def image_size(self, model: nn.Module) -> ImageSize | None:
        """The size the model resizes its inputs to, or None when it takes inputs as they come."""
        return None

    def set_image_size(self, model: nn.Module, size: ImageSize) -> None:
        """Make the model resize its inputs to ``size`` (``--imgsz``)."""
        raise NotImplementedError(f"{type(model).__name__} has no input size headfit can set")

    def jittered_size(
        self, model: nn.Module, size: ImageSize, scales: tuple[float, float]
    ) -> ImageSize | None:
        """Train-time sizes that make the model's own resize a scale jitter over ``scales``, or None
        when its resize is fixed (then ``jitter_transforms`` jitters the data instead)."""
        return None

    def jitter_transforms(self, model: nn.Module, scales: tuple[float, float]) -> list[Any]:
        """``transforms.v2`` steps that jitter the scale in the data, for models with a fixed resize."""
        return []

    def detections_per_image(self, model: nn.Module) -> int | None:
        return None

    def set_detections_per_image(self, model: nn.Module, count: int) -> None:
        raise NotImplementedError(f"{type(model).__name__} has no detections-per-image setting")

    def freezable(self, model: nn.Module) -> dict[str, str]:
        """Parts ``--freeze`` can name: part name -> module path (e.g. ``backbone`` -> ``backbone.body``)."""
        return {}

    def ddp_find_unused_parameters(self, model: nn.Module) -> bool:
        """Whether a train-mode forward can leave trainable parameters without a gradient, so that
        ``DistributedDataParallel`` must look for them each step (slower). torchvision's detectors
        use every parameter in training, as its reference scripts assume."""
        return False

    def target_needs(self, model: nn.Module) -> dict[str, str]:
        """Target keys beyond the task's basics the model trains on (``masks``), each with the model
        to use instead when the data has none."""
        return {}

    # -- live evidence ---------------------------------------------------------------------------------

    def explain_failure(self, model: nn.Module, module_path: str, diagnosis: Diagnosis) -> Evidence:
        """What the live model says about a forward that failed in ``module_path``: the family's facts,
        and every lint problem as a cause (most likely when it is in, above or below that module)."""
        causes = [self.cause_from(problem, module_path) for problem in self.lint(model)]
        return Evidence(self.live_facts(model, module_path), causes)

    def live_facts(self, model: nn.Module, module_path: str) -> list[str]:
        """Facts with numbers about the heads, for any failure inside the model."""
        return []

    def check_targets(self, model: nn.Module, targets: Any, *, name: str = "targets") -> Evidence:
        """Check the training targets of a batch (the values in the failing frames) against the heads,
        without running the model; ``name`` is the user's name for ``targets`` in fixes."""
        return Evidence()

    def check_images(self, model: nn.Module, images: Any, *, name: str = "images") -> Evidence:
        """Check what the user passed as the model's images (the first argument of its forward, live)
        against the layout the family's models take; ``name`` is the user's name for it in fixes."""
        return Evidence()

    def cause_from(self, problem: Problem, failing_module: str) -> Cause:
        """A lint problem as a cause: most likely when the forward failed in, above or below its module."""
        from headfit.nnutil import are_related  # nnutil imports torch; this module must not (explain)

        near, far = self.lint_confidence
        confidence = near if are_related(problem.module, failing_module) else far
        return Cause(problem.summary, confidence, problem.module, problem.attribute, problem.fix)


_FAMILIES: list[Family] = []


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: register one instance of a family; warn on a duplicate name (as timm does)."""
    if any(f.name == cls.name for f in _FAMILIES):
        warnings.warn(f"headfit family {cls.name!r} registered twice; keeping the first", stacklevel=2)
        return cls
    _FAMILIES.append(cls())
    _FAMILIES.sort(key=lambda f: f.priority)
    return cls


def registered_families() -> list[Family]:
    return list(_FAMILIES)
