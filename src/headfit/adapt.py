"""Re-head a model for K classes, prove it works, and save it so it can be rebuilt.

``adapt(model, K)`` asks the model's family (``families/``) to replace the class-dependent layers in
place, then verifies the result without changing anything else:

1. every tensor outside the replaced layers is bit-identical to what it was before;
2. ``headfit.check`` passes (head lint and a meta-device shape trace);
3. one real train step on a tiny synthetic batch gives a finite loss, and every new layer gets
   gradients; one eval forward gives outputs for the new head's class count.

The smoke step runs under a forked RNG and restores BatchNorm statistics, gradients and every
module's training flag afterwards, so the model comes back as it went in, apart from its head.

``adapt_file`` is what ``headfit adapt`` runs: build, load a checkpoint, adapt, verify, save the
weights and a JSON sidecar; ``rebuild(path)`` turns those two files back into the model.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.errors import CheckpointError, ModelSpecError, UsageError, VerificationError
from headfit.families import AdaptSummary, Family, family_for

if TYPE_CHECKING:
    import torch
    from torch import nn

    from headfit.weights import LoadReport

SIDECAR_SUFFIX = ".json"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


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
    options: dict[str, Any] = field(default_factory=dict)  # num_keypoints / head, to rebuild the model
    verification: Verification | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adapt(
    model: nn.Module,
    num_classes: int,
    *,
    keep_classes: list[int | str] | None = None,
    class_names: list[str] | None = None,
    num_keypoints: int | None = None,
    head: str | None = None,
    source_names: list[str] | None = None,
    verify: bool = True,
) -> nn.Module:
    """Re-head ``model`` in place for ``num_classes`` object classes and return it (see ``adapt_with_report``)."""
    return adapt_with_report(
        model,
        num_classes,
        keep_classes=keep_classes,
        class_names=class_names,
        num_keypoints=num_keypoints,
        head=head,
        source_names=source_names,
        verify=verify,
    )[0]


def adapt_with_report(
    model: nn.Module,
    num_classes: int,
    *,
    keep_classes: list[int | str] | None = None,
    class_names: list[str] | None = None,
    num_keypoints: int | None = None,
    head: str | None = None,
    source_names: list[str] | None = None,
    verify: bool = True,
) -> tuple[nn.Module, AdaptReport]:
    """Re-head ``model`` in place and return it with an ``AdaptReport``.

    ``num_classes`` counts object classes only; the background is added where the family counts it.
    ``keep_classes`` (ids or names of the pretrained head's classes, one per new class) starts the new
    rows from those pretrained rows. ``source_names`` names the pretrained head's rows when headfit
    does not know them (it knows COCO, VOC, ImageNet-1k and Kinetics-400). Raises ``UsageError`` for
    bad arguments and ``VerificationError`` when the re-headed model does not work.
    """
    report = _adapt_unverified(
        model, num_classes, keep_classes, class_names, num_keypoints, head, source_names
    )
    if verify:
        report.verification = verify_adapted(model, report)
        raise_if_failed(report)
    return model, report


def raise_if_failed(report: AdaptReport) -> None:
    check = report.verification
    if check is not None and not check.ok:
        raise VerificationError(
            f"the re-headed model failed verification: {'; '.join(check.failures)}. This is a bug in "
            f"headfit's `{report.family}` family; please report it with the model spec"
        )


def _adapt_unverified(model, num_classes, keep_classes, class_names, num_keypoints, head, source_names):
    """Re-head, and record whether anything outside the replaced layers changed."""
    before = _snapshot(model)
    report = _reheaded(model, num_classes, keep_classes, class_names, num_keypoints, head, source_names)
    report.verification = Verification()
    _check_unchanged_outside(model, before, report.replaced, report.verification)
    return report


def _reheaded(model, num_classes, keep_classes, class_names, num_keypoints, head, source_names):
    _check_num_classes(num_classes)
    family = family_for(model)
    source_outputs = source_head_outputs(family, model)
    keep, kept_names = _resolve_keep(family, model, keep_classes, num_classes, source_outputs, source_names)
    names = _class_names(class_names, kept_names, num_classes)
    options = {k: v for k, v in (("num_keypoints", num_keypoints), ("head", head)) if v is not None}
    summary = family.adapt(model, num_classes, keep=keep, **options)
    report = _report(family, summary, keep, names, options)
    report.kept_names = kept_names
    return report


def _check_num_classes(num_classes: Any) -> None:
    from headfit.spec import MAX_CLASSES

    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 1 <= num_classes <= MAX_CLASSES
    ):
        raise UsageError(
            f"`num_classes` must be a whole number >= 1 and at most {MAX_CLASSES:,} (your object classes), "
            f"got {num_classes!r}"
        )


def source_head_outputs(family: Family, model: nn.Module) -> int | None:
    """How many rows the current (pretrained) head has, background included where it is counted."""
    count = family.num_classes(model)
    if count is not None:
        return count + int(family.counts_background)
    heads = family.heads(model)
    return heads[0].outputs if heads else None


def _resolve_keep(family, model, keep_classes, num_classes, source_outputs, source_names):
    """``keep_classes`` as source-head rows, and the names of those rows when known."""
    from headfit import classnames

    if not keep_classes:
        return None, None
    if len(keep_classes) != num_classes:
        raise UsageError(
            f"`keep_classes` lists {len(keep_classes)} classes but you asked for {num_classes}: give one "
            "pretrained class (id or name) per new class, in the new order"
        )
    if source_outputs is None:
        raise UsageError(f"cannot tell how many classes the pretrained head of `{type(model).__name__}` has")
    names = source_names or classnames.source_categories(source_outputs)
    rows = classnames.resolve_keep(list(keep_classes), names, source_outputs, family.counts_background)
    return rows, ([names[r] for r in rows] if names and len(names) == source_outputs else None)


def _class_names(given: list[str] | None, kept: list[str] | None, num_classes: int) -> list[str] | None:
    if given is None:
        return kept
    if len(given) != num_classes:
        raise UsageError(
            f"{len(given)} class names given for {num_classes} classes: give exactly one name per class"
        )
    return list(given)


def _report(family: Family, summary: AdaptSummary, keep, names, options) -> AdaptReport:
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


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every tensor, to prove afterwards that only the replaced layers changed."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _under(key: str, paths: list[str]) -> bool:
    return any(p == "" or key == p or key.startswith(p + ".") for p in paths)


def _check_unchanged_outside(model, before, replaced: list[str], check: Verification) -> None:
    after = model.state_dict()
    outside = [k for k in set(before) | set(after) if not _under(k, replaced)]
    lost = sorted(k for k in outside if k not in after)
    added = sorted(k for k in outside if k not in before)
    changed = sorted(k for k in outside if k in before and k in after and not _same(before[k], after[k]))
    for what, keys in (("disappeared", lost), ("appeared", added), ("changed", changed)):
        if keys:
            check.fail(f"{len(keys)} tensor(s) outside the replaced layers {what}, e.g. `{keys[0]}`")
    if not (lost or added or changed):
        check.steps.append(f"{len(outside)} tensors outside the replaced layers are unchanged")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    if a.device.type == "meta" or b.device.type == "meta":
        return a.shape == b.shape and a.dtype == b.dtype
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device))


def verify_adapted(model: nn.Module, report: AdaptReport) -> Verification:
    """Run check and one small real train and eval step; the model comes back as it went in."""
    check = report.verification or Verification()
    start = time.perf_counter()
    family = family_for(model)
    _run_check(model, check)
    if _on_meta(model):
        check.steps.append("smoke step skipped: the model is on the meta device")
    elif check.ok:
        with _preserved(model):
            _smoke_step(model, family, report, check)
    check.seconds = round(time.perf_counter() - start, 3)
    return check


def _on_meta(model: nn.Module) -> bool:
    return any(p.device.type == "meta" for p in model.parameters())


def _run_check(model: nn.Module, check: Verification) -> None:
    """``headfit.check``: the family's lint plus the meta-device trace."""
    from headfit.check import check as run_check

    result = run_check(model)
    for p in result.problems:
        check.fail(f"check {p.code} at `{p.module}`: {p.summary}")
    if not result.trace.completed:
        check.fail(f"the meta-device trace stopped at `{result.trace.stopped_at}`: {result.trace.reason}")
    if result.ok and check.ok:
        check.steps.append("check: the heads agree and the meta-device trace completes")


def _smoke_step(model: nn.Module, family: Family, report: AdaptReport, check: Verification) -> None:
    with family.smoke_context(model):
        _smoke_train_and_eval(model, family, report, check)


def _smoke_train_and_eval(model: nn.Module, family: Family, report: AdaptReport, check: Verification) -> None:
    import torch

    model.train()
    batch = family.smoke_batch(model, report.num_classes)
    try:
        loss = family.smoke_loss(model, model(*batch.args, **batch.kwargs), batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            check.fail(f"the train step's loss is {value}")
            return
        loss.backward()
    except Exception as exc:  # the re-headed model does not run: that is the finding
        check.fail(f"the train step raised {type(exc).__name__}: {exc}")
        return
    check.loss = round(value, 4)
    _check_gradients(model, report, check)
    model.eval()
    try:
        with torch.no_grad():
            classes = family.output_classes(model, model(*batch.args, **batch.kwargs))
    except Exception as exc:
        check.fail(f"the eval forward raised {type(exc).__name__}: {exc}")
        return
    check.output_classes = classes
    if classes is not None and classes != report.head_outputs:
        check.fail(f"eval outputs carry {classes} classes, the head should give {report.head_outputs}")
    elif classes is not None:
        check.steps.append(f"eval forward: outputs for {classes} classes")


def _check_gradients(model: nn.Module, report: AdaptReport, check: Verification) -> None:
    import torch

    new = [(n, p) for n, p in model.named_parameters() if _under(n, report.replaced)]
    frozen = [n for n, p in new if not p.requires_grad]
    missing = [n for n, p in new if p.requires_grad and p.grad is None]
    bad = [n for n, p in new if p.grad is not None and not torch.isfinite(p.grad).all()]
    for what, names in (
        ("is frozen", frozen),
        ("got no gradient", missing),
        ("got a non-finite gradient", bad),
    ):
        if names:
            check.fail(
                f"the new parameter `{names[0]}` {what}"
                + (f" (and {len(names) - 1} more)" if names[1:] else "")
            )
    if not (frozen or missing or bad):
        trainable = sum(p.requires_grad for p in model.parameters())
        check.steps.append(
            f"train step: loss {check.loss:.4g}, all {len(new)} new parameters get gradients "
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


# ---------------------------------------------------------------------------------------------------
# headfit adapt: build, load, adapt, verify, save; and rebuild from what was saved


@dataclass
class AdaptRun:
    """Everything ``headfit adapt`` did, for the CLI to print."""

    spec: str
    load: LoadReport | None
    report: AdaptReport
    output: Path | None = None
    sidecar: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        ok = self.report.verification is None or self.report.verification.ok
        return {
            "model": self.spec,
            "ok": ok,
            "load": self.load.to_dict() if self.load else None,
            "adapt": self.report.to_dict(),
            "output": str(self.output) if self.output else None,
            "sidecar": str(self.sidecar) if self.sidecar else None,
        }


def adapt_file(
    spec: str,
    num_classes: int,
    output: Path,
    *,
    weights: Path | None = None,
    fmt: str | None = None,
    ema: bool = False,
    **options: Any,
) -> AdaptRun:
    """Build ``spec`` with its pretrained head size, load ``weights``, adapt, verify and save.

    Saves only when verification passes; the returned run says what failed otherwise
    (``raise_if_failed(run.report)`` turns that into a VerificationError).
    """
    from headfit import classnames
    from headfit.spec import build_model
    from headfit.weights import load_weights

    check_writable(output)
    fmt = output_format(output, fmt)
    model = build_model(spec)
    load = load_weights(model, weights, ema=ema) if weights is not None else None
    if options.get("keep_classes") and options.get("source_names") is None:
        outputs = source_head_outputs(family_for(model), model)
        options["source_names"] = classnames.source_categories(outputs, spec) if outputs else None
    report = _adapt_unverified(
        model,
        num_classes,
        options.get("keep_classes"),
        options.get("class_names"),
        options.get("num_keypoints"),
        options.get("head"),
        options.get("source_names"),
    )
    report.verification = verify_adapted(model, report)
    run = AdaptRun(spec, load, report)
    if report.verification.ok:
        run.output, run.sidecar = save_adapted(model, output, fmt, sidecar_document(spec, report, load))
    return run


def output_format(output: Path, fmt: str | None) -> str:
    """``pt`` for ``.pt``/``.pth`` outputs, ``safetensors`` for ``.safetensors``; ``--format`` must agree.

    Other suffixes are refused: ``headfit check OUT`` and ``rebuild`` recognise adapted weights by
    their suffix.
    """
    by_suffix = {".pt": "pt", ".pth": "pt", ".safetensors": "safetensors"}.get(output.suffix)
    if by_suffix is None:
        suggested = output.with_suffix(".pt" if fmt == "pt" else ".safetensors").name
        raise UsageError(
            f"the output name {output.name!r} must end in .safetensors, .pt or .pth, so that "
            f"`headfit check OUT` can rebuild the model from it; e.g. `-o {suggested}`"
        )
    if fmt and fmt != by_suffix:
        raise UsageError(f"--format {fmt} does not match the output name {output.name!r}; change one of them")
    return by_suffix


def check_writable(output: Path) -> None:
    """Refuse an output that cannot be written before building, loading and verifying the model."""
    if output.is_dir():
        raise UsageError(
            f"the output {str(output)!r} is a folder; give a file name, e.g. `-o {output / 'model.safetensors'}`"
        )
    folder = next((p for p in output.absolute().parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        raise UsageError(f"cannot write {str(output)!r}: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {str(output)!r}: the folder {str(folder)!r} is not writable")


def sidecar_document(spec: str, report: AdaptReport, load: LoadReport | None) -> dict[str, Any]:
    """What it takes to rebuild the model for inference: spec, class count, options, provenance."""
    from headfit import __version__

    return {
        "headfit_version": __version__,
        "model": _portable_spec(spec),
        "family": report.family,
        "num_classes": report.num_classes,
        "head_outputs": report.head_outputs,
        "background": report.background,
        "class_names": report.class_names,
        "kept_classes": report.kept_classes,
        "adapt_options": report.options,
        "replaced": report.replaced,
        "attributes": report.attributes,
        "source_checkpoint": {"path": load.source, "sha256": load.sha256} if load else None,
    }


def _portable_spec(spec: str) -> str:
    """A ``file.py:CALLABLE`` spec with the file's absolute path, so the sidecar works from anywhere."""
    source, sep, name = spec.partition(":")
    if sep and (source.endswith(".py") or "/" in source) and Path(source).is_file():
        return f"{Path(source).resolve()}:{name}"
    return spec


def save_adapted(model: nn.Module, output: Path, fmt: str, document: dict[str, Any]) -> tuple[Path, Path]:
    """Write the weights (safetensors or a ``.pt`` state_dict) and ``OUT.json`` next to them."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    document = {**document, "weights": output.name, "format": fmt}
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    sidecar = sidecar_path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "pt":
            torch.save(state, output)
        else:
            save_file(state, str(output), metadata={"headfit": json.dumps(document)})
        sidecar.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except (OSError, RuntimeError, SafetensorError) as exc:  # disk full, permissions, a folder in the way
        raise UsageError(f"cannot write the adapted model to {str(output)!r}: {exc}") from None
    return output, sidecar


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


def is_adapted_weights(spec: str) -> bool:
    """True for a spec that names a weights file written by ``headfit adapt`` (or its sidecar)."""
    named = spec.removesuffix(SIDECAR_SUFFIX)
    return named.endswith(WEIGHT_SUFFIXES) and (":" not in spec or Path(spec).is_file())


def rebuild(path: str | Path, device: str | None = None) -> nn.Module:
    """The adapted model saved at ``path`` (weights file or its sidecar), ready for inference or check.

    Builds the original spec with its pretrained head size, re-heads it exactly as ``adapt`` did
    (without verification), and loads the saved weights strictly. On ``device="meta"`` the weights are
    not loaded (meta tensors hold no values); shapes are all a meta trace needs.
    """
    from headfit.spec import build_model
    from headfit.weights import load_weights

    weights, document = _read_sidecar(Path(path))
    model = build_model(document["model"], device=device)
    _reheaded(model, document["num_classes"], None, None, *_options(document), None)
    if device == "meta":
        return model
    report = load_weights(model, weights, strict_head=True)
    if report.missing or report.unexpected:
        raise CheckpointError(
            f"{str(weights)!r} does not match the rebuilt `{document['model']}` model "
            f"({len(report.missing)} missing, {len(report.unexpected)} unexpected tensors); "
            "was it written by `headfit adapt` with this sidecar?"
        )
    return model


def _options(document: dict[str, Any]) -> tuple[Any, Any]:
    options = document.get("adapt_options") or {}
    return options.get("num_keypoints"), options.get("head")


def _read_sidecar(path: Path) -> tuple[Path, dict[str, Any]]:
    if path.suffix == SIDECAR_SUFFIX:
        sidecar, weights = path, path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
    else:
        sidecar, weights = sidecar_path(path), path
    if not weights.is_file():
        raise ModelSpecError(f"the adapted weights {str(weights)!r} do not exist")
    if not sidecar.is_file():
        raise ModelSpecError(
            f"{str(weights)!r} has no sidecar {sidecar.name!r}, so headfit cannot tell which model it belongs "
            "to. Keep the `.json` file `headfit adapt` wrote next to the weights, or give the original MODEL spec"
        )
    try:
        document = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelSpecError(f"cannot read the sidecar {str(sidecar)!r} as JSON ({exc})") from None
    absent = [k for k in ("model", "num_classes") if not isinstance(document, dict) or k not in document]
    if absent:
        raise ModelSpecError(f"the sidecar {str(sidecar)!r} lacks {', '.join(f'`{k}`' for k in absent)}")
    if not isinstance(document["model"], str) or type(document["num_classes"]) is not int:
        raise ModelSpecError(
            f"the sidecar {str(sidecar)!r} holds `model` {document['model']!r} and `num_classes` "
            f"{document['num_classes']!r}; they must be a MODEL spec and a whole number, as `headfit adapt` "
            "writes them"
        )
    return weights, document


def render_run(run: AdaptRun) -> list[Any]:
    """Rich renderables for ``headfit adapt``: the load table, what changed, verification, the files."""
    from rich.markup import escape

    parts: list[Any] = []
    if run.load is not None:
        parts.append(run.load)
    else:
        parts.append(
            "no --weights: the model starts from the builder's random weights (headfit never downloads)"
        )
    report = run.report
    parts.append(f"[bold]adapted[/] `{escape(run.spec)}` for {report.num_classes} classes ({report.family})")
    parts.extend(f"  replaced `{escape(path)}`" for path in report.replaced)
    parts.extend(f"  set `{escape(k)}` = {escape(repr(v))}" for k, v in report.attributes.items())
    parts.extend(f"  note: {escape(note)}" for note in report.notes)
    if report.kept_classes:
        kept = ", ".join(_kept_label(row, report.kept_names, i) for i, row in enumerate(report.kept_classes))
        parts.append(f"  new rows start from pretrained rows {escape(kept)}")
    parts.extend(_render_verification(report.verification))
    if run.output is not None:
        parts.append(f"[bold]wrote[/] {escape(str(run.output))} and {escape(str(run.sidecar))}")
        parts.append(f"  check it: `headfit check {escape(shlex.quote(str(run.output)))}`")
    return parts


def _kept_label(row: int, names: list[str] | None, i: int) -> str:
    name = names[i] if names else None
    return f"{row} ({name})" if name else str(row)


def _render_verification(check: Verification | None) -> list[str]:
    from rich.markup import escape

    if check is None:
        return ["verification: skipped"]
    verdict = "[green]ok[/]" if check.ok else "[bold red]failed[/]"
    lines = [f"[bold]verification:[/] {verdict} ({check.seconds:.1f} s)"]
    lines.extend(f"  [green]✓[/] {escape(step)}" for step in check.steps)
    lines.extend(f"  [red]✗[/] {escape(why)}" for why in check.failures)
    return lines
