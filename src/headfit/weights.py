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
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.errors import CheckpointError, UnsafeCheckpointError, UsageError
from headfit.inputs import shape_text
from headfit.spec import require_module

if TYPE_CHECKING:
    import torch
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
    require_module(model, "load_weights")
    if not isinstance(source, (str, PathLike, Mapping)):
        raise TypeError(
            "load_weights() needs a checkpoint: a path to a .pt/.pth/.bin/.safetensors file or a state_dict, "
            f"not {type(source).__name__}"
        )
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
    _require_file(path)
    if _reads_as_safetensors(path):
        return _read_safetensors(path)
    return _read_torch(path)  # also a torch.save file renamed .safetensors: the bytes decide, not the name


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise UsageError(f"the checkpoint {str(path)!r} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"the checkpoint {str(path)!r} is empty (0 bytes): it was not written completely"
        )


def _reads_as_safetensors(path: Path) -> bool:
    """The bytes decide: a safetensors header, or a ``.safetensors`` name on bytes that are not torch's."""
    return _looks_like_safetensors(path) or (
        path.suffix == SAFETENSORS_SUFFIX and not _looks_like_torch(path)
    )


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(_corrupt(path, "safetensors file", exc)) from None


def _read_torch(path: Path) -> Mapping[str, Any]:
    import pickle

    import torch

    try:
        with path.open(
            "rb"
        ) as file:  # a file object: torch.load reads a `.safetensors` *name* as safetensors
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc) from None
    except Exception as exc:  # not a torch file at all (zip/pickle errors of many types)
        raise CheckpointError(_corrupt(path, "PyTorch checkpoint", exc)) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{str(path)!r} holds a {type(obj).__name__}, not a state_dict. Save the weights with "
            "`torch.save(model.state_dict(), path)`."
        )
    return obj


def _refusal(path: Path, exc: Exception) -> CheckpointError:
    """``weights_only`` refused the file: a real pickle of Python objects is unsafe; anything else
    (an unknown opcode, a stream that ends early) is a damaged file, and unpickling it would not help."""
    message = str(exc)
    if _UNSUPPORTED_GLOBAL.search(message):
        return UnsafeCheckpointError(_unsafe_paragraph(path, message))
    return CheckpointError(_corrupt(path, "PyTorch checkpoint", exc))


def _corrupt(path: Path, kind: str, exc: Exception) -> str:
    return (
        f"cannot read {str(path)!r} as a {kind}: the file is corrupt or truncated, or not a checkpoint "
        f"at all ({type(exc).__name__}: {_reader_words(exc)}). Write or download it again; headfit reads "
        "files written by `torch.save(model.state_dict(), path)` and `.safetensors` files"
    )


def _reader_words(exc: Exception) -> str:
    """The reader's own reason, without torch's advice to retry with ``weights_only=False``."""
    message = str(exc)
    if _WEIGHTS_ONLY_DETAIL in message:
        message = message.split(_WEIGHTS_ONLY_DETAIL, 1)[1]
        message = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return " ".join(message.split()) or "no detail"


_WEIGHTS_ONLY_DETAIL = "WeightsUnpickler error:"
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
    """A safetensors file starts with an 8-byte little-endian header length, then a JSON ``{`` (a
    truncated file too: its header length then exceeds the file, which the safetensors reader says)."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _looks_like_torch(path: Path) -> bool:
    """``torch.save`` writes a zip archive (``PK``), or a bare pickle (protocol byte ``0x80``) before 1.6."""
    with path.open("rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


@dataclass
class ShapeComparison:
    """The tensors of a weights file against a model's, by name and shape (no tensor data read)."""

    source: str
    matched: int = 0
    mismatched: list[SkippedTensor] = field(default_factory=list)  # same name, other shape
    missing: list[str] = field(default_factory=list)  # model tensors the file does not have
    unexpected: list[str] = field(default_factory=list)  # file tensors the model does not have

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.unexpected)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def compare_shapes(path: Path, model: nn.Module) -> ShapeComparison:
    """Compare the names and shapes stored in ``path`` with ``model``'s state_dict (meta models too)."""
    stored = tensor_shapes(path)
    comparison = ShapeComparison(str(path))
    for key, tensor in model.state_dict().items():
        shape = stored.get(key)
        if shape is None:
            comparison.missing.append(key)
        elif shape != list(tensor.shape):
            comparison.mismatched.append(SkippedTensor(key, shape, list(tensor.shape)))
        else:
            comparison.matched += 1
    wanted = set(model.state_dict())
    comparison.unexpected = [k for k in stored if k not in wanted]
    return comparison


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """The names and shapes of the tensors in a checkpoint file, reading no tensor data: the header of
    a safetensors file, or a torch file through ``mmap`` (pages that are never touched are never read)."""
    _require_file(path)
    if _reads_as_safetensors(path):
        return _safetensors_shapes(path)
    return _torch_shapes(path)


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            return {key: list(file.get_slice(key).get_shape()) for key in file.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(_corrupt(path, "safetensors file", exc)) from None


def _torch_shapes(path: Path) -> dict[str, list[int]]:
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc) from None
    except Exception as exc:  # a damaged zip, a legacy file mmap cannot map: the data path says which
        if path.suffix == SAFETENSORS_SUFFIX or "mmap" in str(exc):
            return {
                k: list(v.shape) for k, v in find_state_dict(_read_torch(path), label=str(path))[0].items()
            }
        raise CheckpointError(_corrupt(path, "PyTorch checkpoint", exc)) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a state_dict")
    return {k: list(v.shape) for k, v in find_state_dict(obj, label=str(path))[0].items()}


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
        f"checkpoint {shape_text(first.checkpoint_shape, 'list')}, model {shape_text(first.model_shape, 'list')}. "
        "The checkpoint was saved from a model with another head; rebuild the model with the same "
        "class count (or use strict_head=False to skip those tensors)"
    )
