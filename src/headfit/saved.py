"""Saved models: weights plus a JSON sidecar that says how to rebuild them, and the one MODEL resolver.

``headfit adapt ... -o X.safetensors`` writes the weights and ``X.safetensors.json`` beside them: the
base MODEL spec, the class count and the family's re-head options (see ``sidecar_document``).
``load_model(spec)`` is the single entry point every command uses for a MODEL: a saved model is
rebuilt (build the base spec, re-head it as ``adapt`` did, load the weights strictly), anything else
is built by ``spec.build_model``.

Trust: a sidecar is data, and loading a saved model must run no code from it. A sidecar whose base
spec is a ``torchvision:`` or ``timm:`` builder loads without running anything else (those builders
only reach their libraries' registries, and the weights are read with safetensors or
``torch.load(weights_only=True)``). Any other builder (``file.py:CALLABLE``, ``package.module:CALLABLE``)
would import and call code, so it is refused unless the caller passes ``trust_code=True``
(``--trust-code``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.adapt import AdaptOptions, AdaptReport, adapt_unverified, rehead, source_head_outputs
from headfit.diagnosis import Problem
from headfit.errors import CheckpointError, HeadfitError, ModelSpecError, UntrustedCodeError, UsageError
from headfit.families import family_for
from headfit.files import disk_full, new_file_mode
from headfit.spec import build_model, check_class_count, names_a_library_builder
from headfit.verify import under, verify_adapted
from headfit.weights import LoadReport, ShapeComparison, compare_shapes, load_weights

if TYPE_CHECKING:
    from torch import nn

SIDECAR_SUFFIX = ".json"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")
SIDECAR_VERSION = 1  # bump when a reader of version 1 would misread a new sidecar


# ---------------------------------------------------------------------------------------------------
# the one resolver


def load_model(
    spec: str | Path,
    *,
    num_classes: int | None = None,
    device: str | None = None,
    trust_code: bool = False,
) -> nn.Module:
    """The model a MODEL names: a saved model (``X.safetensors``, ``X.pt`` or its ``.json`` sidecar) is
    rebuilt with its weights, any other spec is built by ``spec.build_model``.

    ``num_classes`` counts object classes, as everywhere in headfit: the family adds the background
    where it counts one (a torchvision Faster R-CNN for 3 classes is built with ``num_classes=4``).
    For a saved model it must agree with the class count it was saved for. ``trust_code`` allows a
    saved model whose sidecar names a builder outside torchvision and timm (see the module docstring).
    ``device="meta"`` builds without memory, and then reads no weights.
    """
    if num_classes is not None:
        check_class_count(num_classes, "--num-classes")
    if is_adapted_weights(str(spec)):
        saved = read_sidecar(Path(spec))
        if num_classes is not None and num_classes != saved.num_classes:
            raise ModelSpecError(
                f"{str(spec)!r} was saved for {saved.num_classes} classes, not {num_classes}: drop "
                f"--num-classes, or adapt it again with `headfit adapt {spec} --num-classes {num_classes} -o OUT`"
            )
        return rebuilt(saved, device=device, trust_code=trust_code)[0]
    return build_for_classes(str(spec), num_classes, device)


def build_for_classes(spec: str, num_classes: int | None, device: str | None = None) -> nn.Module:
    """``build_model`` with ``num_classes`` object classes: built once, and again with one more class
    when the model's family counts a background class."""
    model = build_model(spec, num_classes=num_classes, device=device)
    if num_classes is not None and family_for(model).counts_background:
        model = build_model(spec, num_classes=num_classes + 1, device=device)
    return model


def rebuild(path: str | Path, device: str | None = None, *, trust_code: bool = False) -> nn.Module:
    """The saved model at ``path`` (weights file or its sidecar), ready for inference or check.

    Builds the base spec with its pretrained head size, re-heads it exactly as ``adapt`` did (without
    verification), and loads the saved weights strictly. On ``device="meta"`` the weights are not
    loaded (meta tensors hold no values); shapes are all a meta trace needs.
    """
    return rebuilt(read_sidecar(Path(path)), device=device, trust_code=trust_code)[0]


def rebuilt(
    saved: Sidecar, *, device: str | None = None, trust_code: bool = False
) -> tuple[nn.Module, LoadReport | None]:
    """``rebuild`` of a read sidecar, with the report of the strict load (None on meta)."""
    refuse_untrusted(saved, trust_code)
    model = build_model(saved.spec, device=device)
    rehead(model, saved.num_classes, AdaptOptions(verify=False, family=saved.family_options))
    if device == "meta":
        return model, None
    report = load_weights(model, saved.weights, strict_head=True)
    if report.missing or report.unexpected:
        raise CheckpointError(
            f"{str(saved.weights)!r} does not match the model its sidecar rebuilds (`{saved.spec}` for "
            f"{saved.num_classes} classes): {len(report.missing)} missing, {len(report.unexpected)} "
            "unexpected tensors, e.g. "
            f"`{(report.missing or report.unexpected)[0]}`. Was it written by `headfit adapt` with this sidecar?"
        )
    return model, report


def refuse_untrusted(saved: Sidecar, trust_code: bool) -> None:
    """A sidecar may name code to run; without ``trust_code`` only torchvision and timm builders run."""
    if trust_code or names_a_library_builder(saved.spec):
        return
    raise UntrustedCodeError(
        f"refusing to rebuild {str(saved.weights)!r}: its sidecar {str(saved.path)!r} names the builder "
        f"`{saved.spec}`, and rebuilding would {_what_it_runs(saved.spec)}. A saved model loads without "
        "running code only when its sidecar names a `torchvision:` or `timm:` builder. If you trust "
        "the sidecar and that code, run the command again with --trust-code (Python: trust_code=True)"
    )


def _what_it_runs(spec: str) -> str:
    source, _, name = spec.rpartition(":")
    if source.endswith(".py") or "/" in source or "\\" in source:
        return f"run the Python file `{source}` and call its `{name}`"
    if source:
        return f"import the module `{source}` and call `{source}.{name}`"
    return f"import and call `{spec}`"


# ---------------------------------------------------------------------------------------------------
# reading a sidecar


@dataclass(frozen=True)
class Sidecar:
    """A sidecar as read: where the weights and the sidecar are, and the document it holds."""

    weights: Path
    path: Path
    document: dict[str, Any]

    @property
    def spec(self) -> str:
        return self.document["model"]

    @property
    def num_classes(self) -> int:
        return self.document["num_classes"]

    @property
    def family_options(self) -> dict[str, Any]:
        return dict(self.document.get("adapt_options") or {})


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


def is_adapted_weights(spec: str) -> bool:
    """True for a spec that names a weights file written by ``headfit adapt`` (or its sidecar)."""
    named = spec.removesuffix(SIDECAR_SUFFIX)
    return named.endswith(WEIGHT_SUFFIXES) and (":" not in spec or Path(spec).is_file())


def read_sidecar(path: Path) -> Sidecar:
    """The sidecar of a saved model, checked field by field; one paragraph for anything wrong."""
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
    except (ValueError, OSError) as exc:
        raise ModelSpecError(f"cannot read the sidecar {str(sidecar)!r} as JSON ({exc})") from None
    _check_document(document, sidecar)
    return Sidecar(weights, sidecar, document)


def _check_document(document: Any, sidecar: Path) -> None:
    where = f"the sidecar {str(sidecar)!r}"
    absent = [k for k in ("model", "num_classes") if not isinstance(document, dict) or k not in document]
    if absent:
        raise ModelSpecError(f"{where} lacks {', '.join(f'`{k}`' for k in absent)}")
    if not isinstance(document["model"], str) or type(document["num_classes"]) is not int:
        raise ModelSpecError(
            f"{where} holds `model` {document['model']!r} and `num_classes` {document['num_classes']!r}; "
            "they must be a MODEL spec and a whole number, as `headfit adapt` writes them"
        )
    version = document.get("sidecar_version", SIDECAR_VERSION)
    if type(version) is not int or version > SIDECAR_VERSION:
        raise ModelSpecError(
            f"{where} has `sidecar_version` {version!r}; this headfit reads sidecars up to version "
            f"{SIDECAR_VERSION}. Upgrade headfit (`pip install -U headfit`) to read it"
        )
    options = document.get("adapt_options")
    if options is not None and not (isinstance(options, dict) and all(isinstance(k, str) for k in options)):
        raise ModelSpecError(f"{where} holds `adapt_options` {options!r}; it must be an object of options")
    if is_adapted_weights(document["model"]):
        raise ModelSpecError(
            f"{where} names another saved model, {document['model']!r}, as its MODEL; a sidecar names the "
            "base spec the model was built from (e.g. `torchvision:fcos_resnet50_fpn`). Adapt it again "
            "from that spec, or write the base spec into `model`"
        )


# ---------------------------------------------------------------------------------------------------
# check: the saved weights against the rebuilt model


def saved_weights_problems(spec: str, model: nn.Module) -> tuple[ShapeComparison, list[Problem]]:
    """Compare the tensors stored in a saved model's file (names and shapes, from its header) with the
    model its sidecar rebuilds: HF242 when they do not fit. An unreadable file is a CheckpointError."""
    saved = read_sidecar(Path(spec))
    comparison = compare_shapes(saved.weights, model)
    if comparison.ok:
        return comparison, []
    return comparison, [_weights_problem(saved, comparison)]


def _weights_problem(saved: Sidecar, comparison: ShapeComparison) -> Problem:
    total = comparison.matched + len(comparison.mismatched) + len(comparison.missing)
    facts = [f"{comparison.matched} of the rebuilt model's {total} tensors are in the file with their shape"]
    if comparison.mismatched:
        first = comparison.mismatched[0]
        facts.append(
            f"{len(comparison.mismatched)} have another shape, e.g. `{first.key}`: file "
            f"{first.checkpoint_shape}, model {first.model_shape}"
        )
    if comparison.missing:
        facts.append(f"{len(comparison.missing)} are not in the file, e.g. `{comparison.missing[0]}`")
    if comparison.unexpected:
        facts.append(
            f"the file has {len(comparison.unexpected)} the model does not, e.g. `{comparison.unexpected[0]}`"
        )
    return Problem(
        code="HF242",
        module="",
        summary=f"the weights in `{saved.weights.name}` do not fit the model its sidecar rebuilds",
        facts=[f"the sidecar rebuilds `{saved.spec}` for {saved.num_classes} classes", *facts],
        fix=(
            f"keep the sidecar that was written with these weights, or write the model again: "
            f"`headfit adapt {saved.spec} --num-classes {saved.num_classes} --weights CHECKPOINT -o {saved.weights.name}`"
        ),
    )


# ---------------------------------------------------------------------------------------------------
# writing a saved model


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


def sidecar_document(
    spec: str,
    report: AdaptReport,
    load: LoadReport | None,
    *,
    adapted_from: Sidecar | None = None,
) -> dict[str, Any]:
    """What it takes to rebuild the model for inference: the base spec, class count, the family's
    options, and where the weights came from. ``adapted_from``: the saved model this one re-heads
    again (its base spec and options are carried over, so the chain never has to be walked)."""
    base = adapted_from.document if adapted_from else {}
    return {
        "sidecar_version": SIDECAR_VERSION,
        "headfit_version": _headfit_version(),
        "model": base.get("model") or _portable_spec(spec),
        "family": report.family,
        "num_classes": report.num_classes,
        "head_outputs": report.head_outputs,
        "background": report.background,
        "class_names": report.class_names,
        "kept_classes": report.kept_classes,
        "adapt_options": {**(base.get("adapt_options") or {}), **report.options},
        "replaced": report.replaced,
        "attributes": report.attributes,
        "source_checkpoint": _provenance(load)
        if load and not adapted_from
        else base.get("source_checkpoint"),
        "adapted_from": _provenance(load) if adapted_from and load else None,
    }


def _provenance(load: LoadReport) -> dict[str, Any]:
    path = Path(load.source)
    return {"path": str(path.resolve()) if path.exists() else load.source, "sha256": load.sha256}


def _headfit_version() -> str:
    try:
        return importlib.metadata.version("headfit")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _portable_spec(spec: str) -> str:
    """A ``file.py:CALLABLE`` spec with the file's absolute path, so the sidecar works from anywhere."""
    source, sep, name = spec.rpartition(":")
    if sep and (source.endswith(".py") or "/" in source) and Path(source).is_file():
        return f"{Path(source).resolve()}:{name}"
    return spec


def save_adapted(model: nn.Module, output: Path, fmt: str, document: dict[str, Any]) -> tuple[Path, Path]:
    """Write the weights (safetensors or a ``.pt`` state_dict) and ``OUT.json`` next to them.

    Each file is written to a temporary file in the same folder and moved over the target with
    ``os.replace``, so a full disk or a crash leaves the previous files whole.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    document = {**document, "weights": output.name, "format": fmt}
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    sidecar = sidecar_path(output)
    text = json.dumps(document, indent=2) + "\n"

    def write_weights(path: Path) -> None:
        if fmt == "pt":
            torch.save(state, path)
        else:
            save_file(state, str(path), metadata={"headfit": json.dumps(document)})

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with (
            _written(output, write_weights) as weights_tmp,
            _written(sidecar, _text_writer(text)) as sidecar_tmp,
        ):
            os.replace(weights_tmp, output)
            os.replace(sidecar_tmp, sidecar)
    except (OSError, RuntimeError, SafetensorError) as exc:  # disk full, permissions, a folder in the way
        raise UsageError(f"cannot write the adapted model to {str(output)!r}: {_write_error(exc)}") from None
    return output, sidecar


def _text_writer(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8")


def _flush_to_disk(path: Path) -> None:
    """fsync: a full disk shows here, before the rename, not as a truncated file after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _written(target: Path, write: Callable[[Path], None]) -> Iterator[Path]:
    """A temporary file beside ``target`` holding what ``write`` wrote; removed unless moved away."""
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        _flush_to_disk(temporary)
        os.chmod(temporary, new_file_mode())  # mkstemp makes it private; the output is an ordinary file
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def _write_error(exc: BaseException) -> str:
    """The reason a write failed; a full disk is said so, also when torch's zip writer hides it."""
    if disk_full(exc):
        return "no space left on the device; the previous files, if any, are unchanged"
    return " ".join(str(exc).split())


# ---------------------------------------------------------------------------------------------------
# headfit adapt: build or rebuild, load, re-head, verify, save


@dataclass
class AdaptRun:
    """Everything ``headfit adapt`` did, for the CLI to print."""

    spec: str  # the base MODEL spec (for a saved model, the one its sidecar names)
    load: LoadReport | None
    report: AdaptReport
    pretrained: int = 0  # tensors of the adapted model that hold loaded (pretrained or saved) values
    tensors: int = 0  # tensors of the adapted model
    saved_source: str | None = None  # the saved model MODEL named, when it was one
    partial: bool = False  # the load left tensors outside the new head random, as asked
    output: Path | None = None
    sidecar: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.verification is None or self.report.verification.ok

    @property
    def trust_code_needed(self) -> bool:
        """Whether reading the output back will need --trust-code (its base spec runs user code)."""
        return not names_a_library_builder(self.spec)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.saved_source or self.spec,
            "ok": self.ok,
            "load": self.load.to_dict() if self.load else None,
            "from_saved_model": self.saved_source,
            "pretrained_tensors": self.pretrained,
            "tensors": self.tensors,
            "partial_load": self.partial,
            "adapt": self.report.to_dict(),
            "output": str(self.output) if self.output else None,
            "sidecar": str(self.sidecar) if self.sidecar else None,
            "notes": list(self.notes),
        }


def adapt_file(
    spec: str,
    num_classes: int,
    output: Path,
    *,
    weights: Path | None = None,
    fmt: str | None = None,
    ema: bool = False,
    partial_load: bool = False,
    trust_code: bool = False,
    options: AdaptOptions | None = None,
    **keywords: Any,
) -> AdaptRun:
    """Build ``spec`` (or rebuild the saved model it names), load ``weights``, adapt, verify and save.

    A checkpoint must fill every tensor outside the head being replaced: one that leaves any of them
    random fails the load (CheckpointError, naming the builder the checkpoint fits when one does),
    unless ``partial_load=True``. Saves only when verification passes; the returned run says what
    failed otherwise (``raise_if_failed(run.report)`` turns that into a VerificationError).
    ``keywords`` are ``adapt``'s (``keep_classes``, ``class_names``, ``num_keypoints``, ...).
    """
    options = options or AdaptOptions.of(**keywords)
    check_writable(output)
    fmt = output_format(output, fmt)
    source = _saved_source(spec, weights, ema)
    _refuse_overwriting(output, weights, source)
    if source is not None:
        model, load = rebuilt(source, trust_code=trust_code)
    else:
        model = build_model(spec)
        load = load_weights(model, weights, ema=ema) if weights is not None else None
    options = _with_source_names(options, model, source.spec if source else spec)
    report = adapt_unverified(model, num_classes, options)
    run = AdaptRun(
        spec if source is None else source.spec, load, report, saved_source=str(spec) if source else None
    )
    _count_pretrained(run, model, partial_load)
    report.verification = verify_adapted(
        model, report.replaced, report.num_classes, report.head_outputs, report.verification
    )
    if report.verification.ok:
        document = sidecar_document(run.spec, report, load, adapted_from=source)
        run.output, run.sidecar = save_adapted(model, output, fmt, document)
    return run


def _saved_source(spec: str, weights: Path | None, ema: bool) -> Sidecar | None:
    if not is_adapted_weights(spec):
        return None
    source = read_sidecar(Path(spec))
    if weights is not None or ema:
        given = f"--weights {weights}" if weights is not None else "--ema"
        raise UsageError(
            f"{spec!r} is a saved model, which brings its own weights; drop {given}, or give the base spec "
            f"`{source.spec}` with the checkpoint to load into it"
        )
    return source


def _refuse_overwriting(output: Path, weights: Path | None, source: Sidecar | None) -> None:
    """The output must not be a file this run reads: the checkpoint, or the saved model and its sidecar."""
    inputs = [p for p in (weights, source and source.weights, source and source.path) if p is not None]
    for path in inputs:
        if _same_file(output, path) or _same_file(sidecar_path(output), path):
            raise UsageError(
                f"the output {str(output)!r} would overwrite {str(path)!r}, which this run reads: write "
                f"the adapted model to a new name, e.g. `-o {output.with_stem(output.stem + '-adapted').name}`"
            )


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _with_source_names(options: AdaptOptions, model: nn.Module, spec: str) -> AdaptOptions:
    """Names of the pretrained head's rows from the builder's own weights metadata, for ``keep_classes``."""
    from headfit import classnames

    if not options.keep_classes or options.source_names is not None:
        return options
    outputs = source_head_outputs(family_for(model), model)
    return replace(options, source_names=classnames.source_categories(outputs, spec) if outputs else None)


def _count_pretrained(run: AdaptRun, model: nn.Module, partial_load: bool) -> None:
    """How many tensors of the adapted model hold loaded values; a checkpoint that leaves any tensor
    outside the new head random is refused unless ``partial_load``."""
    state = model.state_dict()
    run.tensors = len(state)
    if run.load is None:
        return
    outside = [k for k in state if not under(k, run.report.replaced)]
    loaded = set(run.load.loaded)
    run.pretrained = sum(1 for k in outside if k in loaded)
    random = refuse_partial_load(run.load, run.report.replaced, run.spec, partial_load)
    if random:
        run.partial = True
        run.notes.append(
            f"--partial-load: {len(random)} tensors outside the new head are not from the checkpoint and "
            f"keep the builder's random init, e.g. `{random[0]}`"
        )


def refuse_partial_load(load: LoadReport, replaced: list[str], spec: str, partial_load: bool) -> list[str]:
    """The model tensors outside the ``replaced`` head that ``load`` left random; a CheckpointError
    naming them unless ``partial_load`` (the rule of ``headfit adapt`` and ``headfit train --weights``)."""
    random = _left_random(load, replaced)
    if random and not partial_load:
        raise CheckpointError(_incomplete_load(spec, load, random, replaced))
    return random


def _left_random(load: LoadReport, replaced: list[str]) -> list[str]:
    """Model tensors outside the replaced layers the checkpoint did not fill (BatchNorm counters aside)."""
    keys = [*load.missing, *(s.key for s in load.skipped)]
    return [k for k in keys if not under(k, replaced) and not k.endswith("num_batches_tracked")]


def _incomplete_load(spec: str, load: LoadReport, random: list[str], replaced: list[str]) -> str:
    outside = sum(1 for k in [*load.loaded, *load.missing, *(s.key for s in load.skipped)] if not under(k, replaced))
    skipped = {s.key: s for s in load.skipped}
    missing = [k for k in random if k not in skipped]
    shaped = [skipped[k] for k in random if k in skipped]
    parts = []
    if missing:
        parts.append(f"{len(missing)} are not in it (e.g. `{missing[0]}`)")
    if shaped:
        first = shaped[0]
        parts.append(
            f"{len(shaped)} have other shapes (e.g. `{first.key}`: checkpoint {first.checkpoint_shape}, "
            f"model {first.model_shape})"
        )
    hint = _fitting_builder(spec, Path(load.source))
    return (
        f"the checkpoint {load.source!r} does not fit `{spec}`: of the model's {outside} tensors outside "
        f"the new head, {' and '.join(parts)}, so {len(random)} would keep their random init and the model "
        f"would not be the pretrained one.{hint} Give the MODEL spec the checkpoint was saved from, or pass "
        "--partial-load (Python: partial_load=True) to adapt anyway; the report then counts what stayed random"
    )


def _fitting_builder(spec: str, checkpoint: Path) -> str:
    """`` The checkpoint fits `torchvision:X`.`` when a sibling torchvision builder (same module: resnet18
    for resnet50, Faster R-CNN v1 for v2) takes every one of its tensors outside the head; else ""."""
    candidates = _sibling_builders(spec)
    if not candidates:
        return ""
    from headfit.weights import find_state_dict, read_checkpoint, strip_prefixes

    state = find_state_dict(read_checkpoint(checkpoint))[0]
    for candidate in candidates:
        try:
            model = build_model(candidate, device="meta")
        except HeadfitError:  # a sibling that does not build without arguments is no suggestion
            continue
        tensors, _ = strip_prefixes(state, model.state_dict().keys())
        if _fits_outside_heads(tensors, model):
            return f" Its tensors fit `{candidate}`: did you mean that MODEL?"
    return ""


def _sibling_builders(spec: str) -> list[str]:
    """The other torchvision builders defined in the same module as ``spec``'s (e.g. every ResNet)."""
    source, _, name = spec.partition(":")
    if source != "torchvision":
        return []
    import torchvision

    module = torchvision.models.get_model_builder(name).__module__
    return [
        f"torchvision:{other}"
        for other in torchvision.models.list_models()
        if other != name and torchvision.models.get_model_builder(other).__module__ == module
    ]


def _fits_outside_heads(tensors: dict[str, Any], model: nn.Module) -> bool:
    heads = [h.path for h in family_for(model).heads(model)]
    wanted = {k: v for k, v in model.state_dict().items() if not under(k, heads)}
    return bool(wanted) and all(
        k in tensors and tuple(tensors[k].shape) == tuple(v.shape)
        for k, v in wanted.items()
        if not k.endswith("num_batches_tracked")
    )
