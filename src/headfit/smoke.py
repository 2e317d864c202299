"""The default smoke step for plain ``model(x) -> logits`` classifiers.

After ``adapt``, headfit runs one real train step on a tiny synthetic batch (forward, loss, backward)
and one eval forward, to prove the re-headed model works. ``Family.smoke_batch`` / ``smoke_loss`` /
``output_classes`` delegate here unless a family knows better (detectors take images *and* targets and
return a loss dict; segmentation models return ``{"out": ...}``).

The batch is small on purpose: 2 images at the smallest size the model accepts (the exact size for
ViT-like models, 64x64 or the family's minimum otherwise), so verification takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from headfit.families.base import Family
    from headfit.inputs import InputSpec

SMOKE_BATCH = 2
SMOKE_SIZE = 64  # H and W when the model accepts any size


@dataclass
class SmokeBatch:
    """Positional and keyword arguments for one train-mode forward, and the targets for its loss."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    targets: Any = None


def default_smoke_batch(family: Family, model: nn.Module, num_classes: int) -> SmokeBatch:
    """2 random inputs the model accepts, on its device and dtype, and random targets in ``[0, K)``."""
    import torch

    device, dtype = model_device_dtype(model)
    spec = smoke_input_spec(family, model)
    inputs = [_random_like_spec(shape, spec.dtype, dtype, device) for shape in spec.shapes]
    args = (inputs,) if spec.is_list else (inputs[0],)
    targets = torch.randint(0, max(num_classes, 1), (SMOKE_BATCH,), device=device)
    return SmokeBatch(args=args, targets=targets)


def default_smoke_loss(family: Family, model: nn.Module, output: Any, batch: SmokeBatch) -> torch.Tensor:
    """Cross-entropy of the logits against the batch's targets (dense targets for dense logits)."""
    import torch.nn.functional as F

    logits = first_tensor(output)
    targets = batch.targets
    if logits.dim() > 2:  # (N, K, *spatial): one target per position
        targets = targets.view(-1, *([1] * (logits.dim() - 2))).expand(logits.shape[:1] + logits.shape[2:])
    return F.cross_entropy(logits.float(), targets)


def default_output_classes(family: Family, model: nn.Module, output: Any) -> int | None:
    """The class dimension of an eval-mode output: the last for (N, K), the channels for (N, K, H, W)."""
    try:
        logits = first_tensor(output)
    except TypeError:
        return None
    if logits.dim() in (4, 5):  # (N, K, H, W) / (N, K, T, H, W)
        return int(logits.shape[1])
    return int(logits.shape[-1])


def first_tensor(output: Any) -> torch.Tensor:
    """The logits of an output: the tensor itself, or the first element of a tuple (GoogLeNetOutputs)."""
    import torch

    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, dict) and "out" in output:  # segmentation models
        output = output["out"]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model returned {type(output).__name__}, not logits")
    return output


def smoke_input_spec(family: Family, model: nn.Module) -> InputSpec:
    """The family's default input, resized to the smallest size its size rule allows, batch of 2.

    A size rule read off the model can be too generous (timm's Inception v3 reduces 32x, but its
    unpadded stem needs 75 px), so one train-mode meta trace confirms the small size; the family's
    default size, which ``check`` has just traced, is the fallback.
    """
    default = family.default_inputs(model)[0]
    small = _resized(default, lambda shape: _small(family, model, shape))
    full = _resized(default, lambda shape: shape)
    return small if small == full or _accepts(model, family, small) else full


def _resized(spec: InputSpec, resize: Callable[[tuple[int, ...]], tuple[int, ...]]) -> InputSpec:
    """``spec`` with ``SMOKE_BATCH`` samples, each shape (without batch) passed through ``resize``."""
    from headfit.inputs import InputSpec

    if spec.is_list:
        return InputSpec.images(*[resize(s) for s in spec.shapes[:SMOKE_BATCH]])
    return InputSpec(((SMOKE_BATCH, *resize(spec.shapes[0][1:])),), is_list=False, dtype=spec.dtype)


def _accepts(model: nn.Module, family: Family, spec: InputSpec) -> bool:
    """Whether a train-mode forward of ``spec`` goes through, traced on the meta device."""
    from headfit.trace import trace

    heads = [h.path for h in family.heads(model)]
    return not trace(model, (spec.make("meta"),), train=True, head_paths=heads).failed


def _small(family: Family, model: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` (without batch) with H and W made small where the size rule allows it."""
    rule = family.size_rule(model)
    if rule is None or len(shape) < 3:
        return shape  # no rule, or not an image: trust the family's default input
    if rule.exact is not None:
        return shape[:-2] + tuple(rule.exact)
    side = max(SMOKE_SIZE, rule.minimum or 0)
    if rule.multiple_of:
        side = -(-side // rule.multiple_of) * rule.multiple_of
    return shape[:-2] + (side, side)


def _random_like_spec(shape: tuple[int, ...], spec_dtype: str, dtype: Any, device: Any) -> torch.Tensor:
    import torch

    wanted = getattr(torch, spec_dtype)
    if wanted.is_floating_point:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.zeros(shape, device=device, dtype=wanted)  # token ids: 0 is always a valid id


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of the model's first parameter (CPU float32 without parameters)."""
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32
