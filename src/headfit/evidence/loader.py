"""DataLoader evidence: a last batch of one sample in train mode (HF for BatchNorm), and the default
collate stacking samples of different sizes (detection samples need a list collate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from headfit.diagnosis import Cause
from headfit.evidence.base import LiveEvidence, finder
from headfit.explain.arith import shape_str
from headfit.modulepath import module_name
from headfit.scene import Scene, user_values

COLLATE_CODE = "HF136"  # a DataLoader's default collate cannot stack samples of different sizes


@finder(code=None, priority=10)
def last_batch_of_one(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """A BatchNorm in train mode got one sample: find the DataLoader whose last batch has one."""
    module = scene.module
    if not isinstance(module, nn.modules.batchnorm._BatchNorm) or not module.training:
        return None
    for name, loader in user_values(scene, DataLoader):
        size, batch = len(loader.dataset), loader.batch_size
        if batch and not loader.drop_last and size % batch == 1:
            fact = f"`{name}` has {size} samples in batches of {batch}: {size} = {size // batch}*{batch} + 1, so its last batch has one sample"
            fix = f"{name} = DataLoader({name}.dataset, batch_size={batch}, drop_last=True)  # keep your other arguments"
            cause = Cause(
                f"the last batch of `{name}` has one sample and `{module_name(scene.module_path)}` is in train mode",
                0.95,
                scene.module_path,
                "training",
                fix,
            )
            return LiveEvidence([fact], [cause])
    return None


@finder(code=COLLATE_CODE, priority=11)
def collate_sizes(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """The default collate tried to stack samples of different sizes: detection needs its own collate_fn."""
    batches = [f.f_locals["batch"] for f in scene.frames if f.f_code.co_name == "default_collate"]
    if not batches or "stack expects each tensor to be equal size" not in str(exc):
        return None
    samples = batches[0]
    loaders = user_values(scene, DataLoader)
    name, loader = loaders[0] if loaders else ("loader", None)
    batch_size = loader.batch_size if loader is not None else "..."
    stacked = _stacked_tensors(scene)
    key = _collated_key(scene)
    boxes = bool(stacked) and all(t.ndim == 2 and t.shape[-1] == 4 for t in stacked)
    detection = boxes or any(
        isinstance(part, Mapping) and "boxes" in part for sample in samples for part in _parts(sample)
    )
    if detection and samples and isinstance(samples[0], Mapping):
        return _box_dict_collate(name, batch_size, key, stacked)
    if detection:
        fact = f"`{name}` yields (image, target) samples with images and box counts of different sizes; the default collate stacks them into one tensor"
        fix = f"{name} = DataLoader({name}.dataset, batch_size={batch_size}, collate_fn=lambda batch: tuple(zip(*batch)))  # keep your other arguments"
        summary = f"`{name}` uses the default collate for detection samples; detectors take lists"
        return LiveEvidence([fact], [Cause(summary, 0.9, None, None, fix)])
    shapes = sorted({shape_str(list(t.shape)) for t in stacked or _tensors_of(samples)})[:4]
    where = f" in `{key}`" if key else ""
    fact = (
        f"`{name}` yields samples of different shapes{where} ({', '.join(shapes)}); a batch needs one shape"
    )
    fix = "transforms.Resize((224, 224))  # in the dataset's transform, so every sample has one size"
    return LiveEvidence(
        [fact], [Cause(f"the samples of `{name}` differ in size", 0.8, None, None, fix)], COLLATE_CODE
    )


def _stacked_tensors(scene: Scene) -> list[torch.Tensor]:
    """The tensors the innermost collate call tried to stack (one field of every sample)."""
    for frame in reversed(scene.frames):
        if frame.f_code.co_name in ("collate_tensor_fn", "collate", "default_collate"):
            batch = frame.f_locals.get("batch")
            if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
                return list(batch)
    return []


def _collated_key(scene: Scene) -> str | None:
    """The dict key being collated when it failed (the collate of a dict sample recurses per key)."""
    for frame in reversed(scene.frames):
        key = frame.f_locals.get("key") if "collate" in frame.f_code.co_filename else None
        if isinstance(key, str):
            return key
    return None


def _box_dict_collate(
    name: str, batch_size: Any, key: str | None, stacked: list[torch.Tensor]
) -> LiveEvidence:
    """Dict samples with a different number of boxes each: collate every key into a list instead."""
    field = f"`{key}`" if key else "a field"
    counts = ", ".join(str(int(t.shape[0])) for t in stacked[:4])
    fact = (
        f"`{name}` yields dict samples whose {field} holds boxes of shape [N, 4] with N = {counts}: "
        "images with different numbers of objects cannot be stacked into one tensor"
    )
    fix = (
        f"{name} = DataLoader({name}.dataset, batch_size={batch_size}, "
        "collate_fn=lambda batch: {key: [sample[key] for sample in batch] for key in batch[0]})  # keep your other arguments"
    )
    summary = f"the default collate of `{name}` stacks {field} across samples, but each image has its own number of boxes"
    return LiveEvidence([fact], [Cause(summary, 0.9, None, key, fix)])


def _parts(sample: Any) -> list[Any]:
    return list(sample) if isinstance(sample, (tuple, list)) else [sample]


def _tensors_of(samples: list[Any]) -> list[torch.Tensor]:
    return [part for sample in samples for part in _parts(sample) if isinstance(part, torch.Tensor)]
