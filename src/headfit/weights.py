"""Load a checkpoint into a model safely, keeping every tensor that fits and saying what did not.

``load_weights(model, source)`` reads ``.pt``/``.pth``/``.bin`` files with ``torch.load(weights_only=True)``
(never arbitrary unpickling) and ``.safetensors`` files with safetensors, finds the state_dict inside
training checkpoints (``{"model": ...}``, ``{"state_dict": ...}``, ...), strips the ``module.`` /
``model.`` / ``_orig_mod.`` prefixes that DataParallel, wrappers and ``torch.compile`` add (only when
stripping makes more keys match), and loads every tensor whose shape fits. Tensors that do not fit
(the old head) are skipped and reported with both shapes. A load that matches nothing is an error:
``strict=False`` on its own silently returns a random model (pytorch#3805), headfit never does.

EMA weights: training checkpoints often hold both the raw weights and an EMA copy. headfit loads the
raw weights by default (the ones ``model.state_dict()`` saved) and loads the EMA copy only with
``ema=True``; the report says when an EMA copy was there and not used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.errors import CheckpointError, UnsafeCheckpointError, UsageError

if TYPE_CHECKING:
    import torch
    from rich.console import Console, ConsoleOptions, RenderResult
    from torch import nn

# where training scripts put the state_dict, most common first
NESTED_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "net", "network", "module")
EMA_KEYS = ("model_ema", "state_dict_ema", "ema", "ema_state_dict", "model_ema_state_dict")
# prefixes added by DataParallel/DDP, wrapper modules and torch.compile
PREFIXES = ("module.", "model.", "_orig_mod.")
SAFETENSORS_SUFFIX = ".safetensors"


@dataclass
class SkippedTensor:
    """A checkpoint tensor whose shape does not fit the model's tensor of the same name."""

    key: str
    checkpoint_shape: list[int]
    model_shape: list[int]


@dataclass
class LoadReport:
    """What ``load_weights`` did: loaded, skipped (shape mismatch), missing and unexpected keys."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[SkippedTensor] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys the checkpoint does not have
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the model does not have
    stripped_prefix: str = ""  # e.g. "module." or "_orig_mod.module."
    entry: str = ""  # the nested entry the state_dict came from, e.g. "model" or "state_dict_ema"
    sha256: str | None = None  # of the checkpoint file (None for an in-memory state_dict)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every model tensor came from the checkpoint."""
        return not self.skipped and not self.missing

    def missing_only_counters(self) -> bool:
        """True when every missing key is a BatchNorm ``num_batches_tracked`` counter (harmless)."""
        return bool(self.missing) and all(k.endswith("num_batches_tracked") for k in self.missing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from render_load_report(self)


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    *,
    strict_head: bool = False,
    ema: bool = False,
) -> LoadReport:
    """Load ``source`` into ``model`` in place and report what happened.

    ``strict_head=True`` refuses tensors whose shapes do not fit instead of skipping them (use it
    when the checkpoint is meant to be the model's own, e.g. after ``adapt``). ``ema=True`` loads the
    EMA copy of a training checkpoint. Raises ``UnsafeCheckpointError`` for files that need arbitrary
    unpickling and ``CheckpointError`` when nothing in the checkpoint fits the model.
    """
    if isinstance(source, Mapping):
        raw, label, digest = source, "<state_dict>", None
    else:
        path = Path(source)
        raw, label, digest = read_checkpoint(path), str(path), file_sha256(path)
    state, entry, notes = find_state_dict(raw, ema=ema, label=label)
    state, prefix = strip_prefixes(state, model.state_dict().keys())
    report = LoadReport(source=label, stripped_prefix=prefix, entry=entry, sha256=digest, notes=notes)
    fitting = _sort_tensors(state, model.state_dict(), report)
    if not report.loaded:
        raise CheckpointError(_nothing_matched(label, state, model))
    if strict_head and report.skipped:
        raise CheckpointError(_shapes_refused(label, report.skipped))
    model.load_state_dict(_with_module_versions(fitting, model), strict=False)
    return report


def _with_module_versions(tensors: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """``tensors`` carrying the model's own per-module ``_metadata`` versions, as ``state_dict()`` does.

    Some modules refuse a state_dict without them (torchvision's MNASNet raises "version should be set
    to 1 or 2 instead of None"); safetensors files and re-keyed dicts never carry them, so the tensors
    load as written by the installed code's version of each module.
    """
    from collections import OrderedDict

    state = OrderedDict(tensors)
    state._metadata = getattr(model.state_dict(), "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return state


def read_checkpoint(path: Path) -> Mapping[str, Any]:
    """The object stored in a checkpoint file, read without executing any code from it."""
    if not path.is_file():
        raise UsageError(f"the checkpoint {str(path)!r} does not exist or is not a file")
    if _looks_like_safetensors(path) or (path.suffix == SAFETENSORS_SUFFIX and not _looks_like_torch(path)):
        return _read_safetensors(path)
    return _read_torch(path)  # also a torch.save file renamed .safetensors: the bytes decide, not the name


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from None


def _read_torch(path: Path) -> Mapping[str, Any]:
    import pickle

    import torch

    try:
        with path.open(
            "rb"
        ) as file:  # a file object: torch.load reads a `.safetensors` *name* as safetensors
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _WEIGHTS_ONLY_REFUSAL in str(exc):
            raise UnsafeCheckpointError(_unsafe_paragraph(path, str(exc))) from None
        raise CheckpointError(_unreadable(path, exc)) from None
    except Exception as exc:  # not a torch file at all (zip/pickle errors of many types)
        raise CheckpointError(_unreadable(path, exc)) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{str(path)!r} holds a {type(obj).__name__}, not a state_dict. Save the weights with "
            "`torch.save(model.state_dict(), path)`."
        )
    return obj


def _unreadable(path: Path, exc: Exception) -> str:
    return (
        f"cannot read {str(path)!r} as a PyTorch checkpoint ({type(exc).__name__}: {exc}). "
        "headfit reads files written by `torch.save(model.state_dict(), path)` and `.safetensors` files"
    )


_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _unsafe_paragraph(path: Path, message: str) -> str:
    found = _UNSUPPORTED_GLOBAL.search(message)
    what = f"the Python object `{found.group(1)}`" if found else "Python objects that are not tensors"
    return (
        f"refusing to load {str(path)!r}: it is not a plain state_dict, and reading it would run "
        f"arbitrary code from the file ({what} must be unpickled; a full `torch.save(model)` pickle looks "
        "like this too). headfit only loads checkpoints with `torch.load(weights_only=True)` or safetensors. "
        "If you trust the file, convert it once in a trusted session: "
        f"`obj = torch.load({str(path)!r}, weights_only=False)`, then "
        "`torch.save(obj.state_dict() if isinstance(obj, torch.nn.Module) else obj['model'].state_dict(), "
        "'weights.pt')` (or `safetensors.torch.save_model(model, 'weights.safetensors')`), and pass the new file"
    )


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length, then a JSON ``{``."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _looks_like_torch(path: Path) -> bool:
    """``torch.save`` writes a zip archive (``PK``), or a bare pickle (protocol byte ``0x80``) before 1.6."""
    with path.open("rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_state_dict(
    obj: Mapping[str, Any], *, ema: bool = False, label: str = "<state_dict>"
) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """The tensors of a (possibly nested) checkpoint, the entry they came from, and notes."""
    notes: list[str] = []
    entry: list[str] = []
    for _depth in range(4):  # {"model": {"state_dict": {...}}} is as deep as real checkpoints go
        if _is_flat_state(obj):
            break
        key = _nested_key(obj, ema)
        if key is None:
            break
        notes.extend(_ema_notes(obj, key, ema))
        entry.append(key)
        obj = obj[key]
    if ema and not any(k in EMA_KEYS for k in entry):
        raise CheckpointError(f"ema=True but {label!r} has no EMA entry (looked for {', '.join(EMA_KEYS)})")
    tensors = _tensors_of(obj)
    if not tensors:
        keys = ", ".join(f"`{k}`" for k in list(obj)[:8]) or "nothing"
        raise CheckpointError(
            f"{label!r} holds no tensors headfit can load (top-level keys: {keys}). "
            "Save the weights with `torch.save(model.state_dict(), path)`."
        )
    return tensors, ".".join(entry), notes


def _nested_key(obj: Mapping[str, Any], ema: bool) -> str | None:
    order = EMA_KEYS + NESTED_KEYS if ema else NESTED_KEYS + EMA_KEYS
    return next((k for k in order if isinstance(obj.get(k), Mapping)), None)


def _ema_notes(obj: Mapping[str, Any], chosen: str, ema: bool) -> list[str]:
    if ema:
        return []
    if chosen in EMA_KEYS:
        return [f"the checkpoint holds only EMA weights; loaded `{chosen}`"]
    ema_key = next((k for k in EMA_KEYS if isinstance(obj.get(k), Mapping)), None)
    if ema_key is None:
        return []
    return [f"the checkpoint also holds EMA weights (`{ema_key}`); loaded `{chosen}` (pass ema=True for EMA)"]


def _is_flat_state(obj: Mapping[str, Any]) -> bool:
    import torch

    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _tensors_of(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    import torch

    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def strip_prefixes(state: dict[str, Any], model_keys: Any) -> tuple[dict[str, Any], str]:
    """Strip the chain of wrapper prefixes (e.g. ``_orig_mod.module.``) that makes the most keys match.

    Chains up to three deep are tried; a chain is taken only when it matches more keys than the
    checkpoint as saved, and the shortest chain wins a tie, so a model's own ``model.`` stays put.
    """
    wanted = set(model_keys)
    best_state, best_chain, best = state, "", _matches(state, wanted)
    frontier = [(state, "")]
    for _depth in range(3):
        frontier = [
            (_strip(current, p), chain + p)
            for current, chain in frontier
            for p in PREFIXES
            if any(k.startswith(p) for k in current)
        ]
        for candidate, chain in frontier:
            count = _matches(candidate, wanted)
            if count > best:
                best_state, best_chain, best = candidate, chain, count
    return best_state, best_chain


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def _matches(state: dict[str, Any], wanted: set[str]) -> int:
    return sum(k in wanted for k in state)


def _sort_tensors(state: dict[str, Any], model_state: dict[str, Any], report: LoadReport) -> dict[str, Any]:
    """Fill ``report``'s loaded/skipped/missing/unexpected lists; return the tensors that fit."""
    fitting: dict[str, Any] = {}
    for key, tensor in state.items():
        target = model_state.get(key)
        if target is None:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(target.shape):
            report.skipped.append(SkippedTensor(key, list(tensor.shape), list(target.shape)))
        else:
            fitting[key] = tensor
            report.loaded.append(key)
    report.missing = [k for k in model_state if k not in state]
    return fitting


def _nothing_matched(label: str, state: dict[str, Any], model: nn.Module) -> str:
    ours = list(model.state_dict())
    theirs = list(state)
    return (
        f"no tensor of {label!r} fits the model, so loading it would leave a random model: "
        f"the checkpoint's keys look like `{theirs[0] if theirs else '-'}` and the model's like "
        f"`{ours[0] if ours else '-'}` ({len(theirs)} checkpoint tensors, {len(ours)} model tensors). "
        "Check that the checkpoint is for this architecture (the same MODEL spec it was trained with)"
    )


def _shapes_refused(label: str, skipped: list[SkippedTensor]) -> str:
    first = skipped[0]
    return (
        f"{len(skipped)} tensor(s) of {label!r} do not fit the model, e.g. `{first.key}`: "
        f"checkpoint {_shape(first.checkpoint_shape)}, model {_shape(first.model_shape)}. "
        "The checkpoint was saved from a model with another head; rebuild the model with the same "
        "class count (or use strict_head=False to skip those tensors)"
    )


def _shape(shape: list[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def render_load_report(report: LoadReport, limit: int = 8) -> RenderResult:
    """A short rich table: counts per outcome, and the skipped tensors with both shapes."""
    from rich.markup import escape
    from rich.table import Table

    title = f"[bold]loaded[/] {escape(str(report.source))}"
    if report.entry:
        title += f" (entry `{escape(report.entry)}`)"
    yield title  # a line of its own: a table title would wrap a long path at the table's width
    table = Table(show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("tensors", justify="right")
    table.add_column("detail", overflow="fold")
    table.add_row("loaded", str(len(report.loaded)), _stripped_detail(report))
    table.add_row(
        "skipped", str(len(report.skipped)), "shape does not fit the model" if report.skipped else ""
    )
    table.add_row("missing", str(len(report.missing)), _missing_detail(report))
    table.add_row("unexpected", str(len(report.unexpected)), _first_keys(report.unexpected, limit))
    yield table
    if report.skipped:
        skipped = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        skipped.add_column("skipped tensor")
        skipped.add_column("checkpoint", justify="right")
        skipped.add_column("model", justify="right")
        for s in report.skipped[:limit]:
            skipped.add_row(s.key, _shape(s.checkpoint_shape), _shape(s.model_shape))
        if len(report.skipped) > limit:
            skipped.add_row(f"... {len(report.skipped) - limit} more", "", "")
        yield skipped
    for note in report.notes:
        yield f"note: {note}"


def _stripped_detail(report: LoadReport) -> str:
    return f"stripped prefix `{report.stripped_prefix}`" if report.stripped_prefix else ""


def _missing_detail(report: LoadReport) -> str:
    if report.missing_only_counters():
        return "only BatchNorm `num_batches_tracked` counters (harmless)"
    return _first_keys(report.missing, 3)


def _first_keys(keys: list[str], limit: int) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... {len(keys) - limit} more" if len(keys) > limit else "")
