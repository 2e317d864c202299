"""Prove a re-headed model works, and that nothing but its head changed.

1. every tensor outside the replaced layers is bit-identical to what it was before;
2. ``headfit.check`` passes (head lint and a meta-device shape trace);
3. one real train step on a tiny synthetic batch gives a finite loss, and every new layer gets
   gradients; one eval forward gives outputs for the new head's class count.

The smoke step runs under a forked RNG and restores BatchNorm statistics, gradients and every
module's training flag afterwards, so the model comes back as it went in, apart from its head.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headfit.check import check
from headfit.families import Family, family_for

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class Verification:
    """The result of verifying an adapted model: each step in plain words, and what failed."""

    ok: bool = True
    steps: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    loss: float | None = None
    output_classes: int | None = None
    seconds: float = 0.0

    def fail(self, why: str) -> None:
        self.ok = False
        self.failures.append(why)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every tensor, to prove afterwards that only the replaced layers changed."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def under(key: str, paths: list[str]) -> bool:
    """Whether the tensor or module ``key`` is one of ``paths`` or inside one ("" is the whole model)."""
    return any(p == "" or key == p or key.startswith(p + ".") for p in paths)


def check_unchanged_outside(
    model: nn.Module, before: dict[str, torch.Tensor], replaced: list[str], result: Verification
) -> None:
    after = model.state_dict()
    outside = [k for k in set(before) | set(after) if not under(k, replaced)]
    lost = sorted(k for k in outside if k not in after)
    added = sorted(k for k in outside if k not in before)
    changed = sorted(k for k in outside if k in before and k in after and not _same(before[k], after[k]))
    for what, keys in (("disappeared", lost), ("appeared", added), ("changed", changed)):
        if keys:
            result.fail(f"{len(keys)} tensor(s) outside the replaced layers {what}, e.g. `{keys[0]}`")
    if not (lost or added or changed):
        result.steps.append(f"{len(outside)} tensors outside the replaced layers are unchanged")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    if a.device.type == "meta" or b.device.type == "meta":
        return a.shape == b.shape and a.dtype == b.dtype
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device))


def verify_adapted(
    model: nn.Module,
    replaced: list[str],
    num_classes: int,
    head_outputs: int,
    result: Verification | None = None,
) -> Verification:
    """Run check and one small real train and eval step; the model comes back as it went in.

    ``replaced`` are the module paths the re-head made new; the eval outputs must carry
    ``head_outputs`` classes (``num_classes`` plus the background where the family counts one).
    """
    result = result or Verification()
    start = time.perf_counter()
    family = family_for(model)
    _run_check(model, result)
    if _on_meta(model):
        result.steps.append("smoke step skipped: the model is on the meta device")
    elif result.ok:
        with _preserved(model):
            with family.smoke_context(model):
                _smoke_train_and_eval(model, family, _Expected(replaced, num_classes, head_outputs), result)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


@dataclass(frozen=True)
class _Expected:
    replaced: list[str]
    num_classes: int
    head_outputs: int


def _on_meta(model: nn.Module) -> bool:
    return any(p.device.type == "meta" for p in model.parameters())


def _run_check(model: nn.Module, result: Verification) -> None:
    """``headfit.check``: the family's lint plus the meta-device trace."""
    report = check(model)
    for p in report.problems:
        result.fail(f"check {p.code} at `{p.module}`: {p.summary}")
    if not report.trace.completed:
        result.fail(f"the meta-device trace stopped at `{report.trace.stopped_at}`: {report.trace.reason}")
    if report.ok and result.ok:
        result.steps.append("check: the heads agree and the meta-device trace completes")


def _smoke_train_and_eval(
    model: nn.Module, family: Family, expected: _Expected, result: Verification
) -> None:
    import torch

    model.train()
    batch = family.smoke_batch(model, expected.num_classes)
    try:
        loss = family.smoke_loss(model, model(*batch.args, **batch.kwargs), batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            result.fail(f"the train step's loss is {value}")
            return
        loss.backward()
    except Exception as exc:  # the re-headed model does not run: that is the finding
        result.fail(f"the train step raised {type(exc).__name__}: {exc}")
        return
    result.loss = round(value, 4)
    _check_gradients(model, expected.replaced, result)
    model.eval()
    try:
        with torch.no_grad():
            classes = family.output_classes(model, model(*batch.args, **batch.kwargs))
    except Exception as exc:
        result.fail(f"the eval forward raised {type(exc).__name__}: {exc}")
        return
    result.output_classes = classes
    if classes is not None and classes != expected.head_outputs:
        result.fail(f"eval outputs carry {classes} classes, the head should give {expected.head_outputs}")
    elif classes is not None:
        result.steps.append(f"eval forward: outputs for {classes} classes")


def _check_gradients(model: nn.Module, replaced: list[str], result: Verification) -> None:
    import torch

    new = [(n, p) for n, p in model.named_parameters() if under(n, replaced)]
    frozen = [n for n, p in new if not p.requires_grad]
    missing = [n for n, p in new if p.requires_grad and p.grad is None]
    bad = [n for n, p in new if p.grad is not None and not torch.isfinite(p.grad).all()]
    for what, names in (
        ("is frozen", frozen),
        ("got no gradient", missing),
        ("got a non-finite gradient", bad),
    ):
        if names:
            result.fail(
                f"the new parameter `{names[0]}` {what}"
                + (f" (and {len(names) - 1} more)" if names[1:] else "")
            )
    if not (frozen or missing or bad):
        trainable = sum(p.requires_grad for p in model.parameters())
        result.steps.append(
            f"train step: loss {result.loss:.4g}, all {len(new)} new parameters get gradients "
            f"({trainable} trainable in all)"
        )


class _preserved:
    """Restore RNG, BatchNorm statistics (every buffer), gradients and training flags on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        import torch

        devices = sorted({p.device.index or 0 for p in self.model.parameters() if p.device.type == "cuda"})
        self.rng = torch.random.fork_rng(devices=devices)
        self.rng.__enter__()
        self.modes = {m: m.training for m in self.model.modules()}
        self.buffers = {n: b.detach().clone() for n, b in self.model.named_buffers()}
        self.grads = {p: p.grad for p in self.model.parameters()}
        for p in self.model.parameters():
            p.grad = None  # backward would otherwise accumulate into the user's gradient tensors

    def __exit__(self, *exc: object) -> None:
        import torch

        for module, mode in self.modes.items():
            module.training = mode
        with torch.no_grad():
            for name, buffer in self.model.named_buffers():
                if name in self.buffers:
                    buffer.copy_(self.buffers[name])
        for p in self.model.parameters():
            p.grad = self.grads.get(p)
        self.rng.__exit__(*exc)
