"""The protocol every model family answers, like timm's ``get_classifier()`` / ``reset_classifier()``.

A family recognises its models, lists their heads and the invariants between heads and attributes,
re-heads them for K classes, and adds what it knows to a diagnosis of a failure inside them.
Each family lives in its own module in ``headfit/families/`` and registers itself with
``@register_family``; adding a family means adding one file.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from headfit.diagnosis import Cause, Diagnosis, Problem

if TYPE_CHECKING:
    from torch import nn

    from headfit.inputs import InputSpec


@dataclass
class HeadInfo:
    """One class-dependent layer of a model and the attributes that must agree with it."""

    path: str  # module path in model.named_modules()
    kind: str  # "classifier", "aux_classifier", "box_classifier", "box_regressor", "mask", "keypoint", ...
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


@dataclass
class SmokeBatch:
    """Positional and keyword arguments for one train-mode forward, and the targets for its loss."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    targets: Any = None


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

    def recognises(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def heads(self, model: nn.Module) -> list[HeadInfo]:
        return []

    def num_classes(self, model: nn.Module) -> int | None:
        """The user-level class count the heads produce now (without background where it is counted)."""
        return None

    def lint(self, model: nn.Module) -> list[Problem]:
        """Head invariants that do not hold, without running the model."""
        return []

    def default_inputs(self, model: nn.Module) -> list[InputSpec]:
        """The positional inputs a shape trace uses when the user gives none."""
        from headfit.inputs import InputSpec

        return [InputSpec.batch(2, 3, 224, 224)]

    def size_rule(self, model: nn.Module) -> SizeRule | None:
        return None

    def adapt(self, model: nn.Module, num_classes: int, **options: Any) -> AdaptSummary:
        """Re-head ``model`` in place for ``num_classes`` object classes and say what changed."""
        raise NotImplementedError(f"headfit cannot adapt {type(model).__name__} models yet")

    def smoke_batch(self, model: nn.Module, num_classes: int) -> SmokeBatch:
        """A tiny synthetic batch for one real train step after ``adapt`` (see ``headfit/smoke.py``)."""
        from headfit.smoke import default_smoke_batch

        return default_smoke_batch(self, model, num_classes)

    def smoke_context(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """Temporary settings for the smoke step (e.g. a detector's resize to 800 px made small)."""
        return contextlib.nullcontext()

    def smoke_loss(self, model: nn.Module, output: Any, batch: SmokeBatch) -> Any:
        """The scalar loss of a train-mode ``output`` for ``batch`` (a torch scalar tensor)."""
        from headfit.smoke import default_smoke_loss

        return default_smoke_loss(self, model, output, batch)

    def output_classes(self, model: nn.Module, output: Any) -> int | None:
        """How many classes an eval-mode ``output`` carries (to verify a re-headed model)."""
        from headfit.smoke import default_output_classes

        return default_output_classes(self, model, output)

    def explain_failure(
        self, model: nn.Module, module_path: str, diagnosis: Diagnosis, prefix: str = "model"
    ) -> Evidence:
        """What the live model says about a forward that failed in ``module_path``.

        ``prefix`` is the expression that names the model in the user's code, so fixes are pasteable
        (``f"{prefix}.head.classification_head.num_classes = 2"``).
        """
        return Evidence()

    # -- training ------------------------------------------------------------------------------------
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

    def target_needs(self, model: nn.Module) -> dict[str, str]:
        """Target keys beyond the task's basics the model trains on (``masks``), each with the model
        to use instead when the data has none."""
        return {}


_FAMILIES: list[Family] = []


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: register one instance of a family; warn on a duplicate name (as timm does)."""
    import warnings

    if any(f.name == cls.name for f in _FAMILIES):
        warnings.warn(f"headfit family {cls.name!r} registered twice; keeping the first", stacklevel=2)
        return cls
    _FAMILIES.append(cls())
    _FAMILIES.sort(key=lambda f: f.priority)
    return cls


def registered_families() -> list[Family]:
    return list(_FAMILIES)
