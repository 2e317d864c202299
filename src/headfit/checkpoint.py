"""Detector checkpoints: ``X.safetensors`` + ``X.safetensors.json``, written by training, read by
``evaluate``, ``predict``, ``check`` and training's resume.

The files are the ones ``headfit adapt`` writes (``saved.py``'s sidecar writer, so ``headfit check
X.safetensors`` rebuilds the model), plus two keys: ``class_map`` (dataset category ids and names, in the model's
label order) and ``image_size`` (the size the model was trained at, or null). Writing is atomic: both
files are written into a fresh folder beside the target and moved into place with ``os.replace``, so
a full disk or a kill leaves the previous checkpoint whole.

Loading never runs code from the files: the weights are safetensors, and a sidecar naming a builder
other than ``torchvision:`` / ``timm:`` (a ``file.py:CALLABLE`` of the user's) is imported only with
``trust_code=True`` (``saved.refuse_untrusted``, the one gate for every saved model).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.datasets.records import ClassMap
from headfit.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

CHECKPOINT_SUFFIX = ".safetensors"


@dataclass
class LoadedDetector:
    """A rebuilt detector in eval mode with what its sidecar says about it."""

    model: nn.Module
    classes: ClassMap  # the model's label order -> dataset ids and names
    image_size: int | None
    spec: str  # the MODEL spec it was built from
    sidecar: dict[str, Any]
    path: Path

    @property
    def class_map_known(self) -> bool:
        """False for a checkpoint of ``headfit adapt`` without class names (``classes`` is then a placeholder)."""
        return "class_map" in self.sidecar or bool(self.sidecar.get("class_names"))


def save_detector(
    model: nn.Module,
    path: str | Path,
    *,
    spec: str,
    classes: ClassMap,
    image_size: int | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` to ``path`` (``.safetensors``) and its sidecar ``path.json``, atomically.

    ``spec`` is the MODEL spec the model was built from (before it was re-headed); ``classes`` maps
    the model's labels to the dataset's ids and names; ``extra`` adds keys to the sidecar (epoch,
    metrics, ...). The model's heads must predict ``len(classes)`` classes.
    """
    from headfit.adapt import AdaptReport
    from headfit.saved import save_adapted, sidecar_document, sidecar_path

    path = Path(path)
    if path.suffix != CHECKPOINT_SUFFIX:
        raise UsageError(f"a detector checkpoint is written as `.safetensors`, not {path.name!r}")
    family = _detector_family(model, str(path))
    predicted = family.num_classes(model)
    if predicted != len(classes):
        raise UsageError(
            f"the model's heads predict {predicted} classes but the class map has {len(classes)} "
            f"({', '.join(classes.names)}); re-head the model for the data's classes before saving it"
        )
    report = AdaptReport(
        family=family.name,
        num_classes=len(classes),
        head_outputs=family.head_outputs(model),
        background=family.counts_background,
        replaced=[],
        attributes={},
        notes=[],
        class_names=list(classes.names),
    )
    document = {
        **sidecar_document(spec, report, None),
        "class_map": classes.to_dict(),
        "image_size": image_size,
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights, sidecar = save_adapted(model, staging / path.name, "safetensors", document)
        os.replace(weights, path)  # the weights first: a sidecar always describes weights that exist
        os.replace(sidecar, sidecar_path(path))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_detector(path: str | Path, *, trust_code: bool = False, device: str = "cpu") -> LoadedDetector:
    """Rebuild the detector saved at ``path`` (weights file or its sidecar), in eval mode on ``device``.

    Every bad input is a ``HeadfitError`` with one paragraph: a folder, a file that is no checkpoint,
    no sidecar, a builder that would run the user's code without ``trust_code``, a model that is not
    a detector.
    """
    from headfit.saved import read_sidecar, rebuilt

    saved = read_sidecar(_checkpoint_path(Path(path)))
    weights, document = saved.weights, saved.document
    model, _ = rebuilt(saved, device=device, trust_code=trust_code)
    family = _detector_family(model, str(weights))
    image_size = document.get("image_size")
    if image_size:
        from headfit.families.base import ImageSize

        family.set_image_size(model, ImageSize.square(int(image_size)))  # as `headfit train --imgsz` set it
    return LoadedDetector(
        model=model.eval(),
        classes=_class_map(document),
        image_size=image_size,
        spec=document["model"],
        sidecar=document,
        path=weights,
    )


def _checkpoint_path(path: Path) -> Path:
    if path.is_dir():
        inside = sorted(p.name for p in path.glob(f"*{CHECKPOINT_SUFFIX}"))
        hint = f"; it holds {', '.join(inside)}: e.g. `{path / inside[0]}`" if inside else ""
        raise UsageError(f"CHECKPOINT {str(path)!r} is a folder: give the checkpoint file inside it{hint}")
    if not path.exists():
        raise UsageError(f"the checkpoint {str(path)!r} does not exist")
    from headfit.saved import SIDECAR_SUFFIX, WEIGHT_SUFFIXES

    if not path.name.removesuffix(SIDECAR_SUFFIX).endswith(WEIGHT_SUFFIXES):
        raise UsageError(
            f"{str(path)!r} is not a headfit checkpoint: give the `.safetensors` file that `headfit train` "
            "(RUN/best.safetensors) or `headfit adapt -o OUT.safetensors` wrote, with its `.json` sidecar beside it"
        )
    return path


def _detector_family(model: nn.Module, where: str) -> Any:
    from headfit.families import family_for

    family = family_for(model)
    if family.task != "detection":
        raise UsageError(
            f"{where} holds a `{type(model).__name__}` ({family.name} family), not an object detector; "
            "`headfit evaluate`, `predict` and detector checkpoints take torchvision-style detectors "
            "(Faster/Mask R-CNN, RetinaNet, FCOS, SSD)"
        )
    return family


def _class_map(document: dict[str, Any]) -> ClassMap:
    """The sidecar's class map; for an ``adapt`` sidecar, its class names (or ``class0..``) by label."""
    if "class_map" in document:
        return ClassMap.from_dict(document["class_map"])
    count = int(document["num_classes"])
    names = document.get("class_names") or [f"class{i}" for i in range(count)]
    return ClassMap(ids=list(range(count)), names=[str(n) for n in names])
