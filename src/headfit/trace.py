"""A shape trace on the meta device: run a model's forward without memory and without touching it.

The trace runs on a *replica*: ``copy.deepcopy`` with a memo that maps every parameter, buffer and
tensor attribute of the user's model to a meta tensor of the same shape, dtype and ``requires_grad``,
so the copy shares no storage and allocates none. Hooks on every submodule of the replica record what
each call received and returned; a stack of running modules names the innermost one when the forward
raises. The user's model is only read.

Detection post-processing selects boxes by value (``nonzero``, boolean masks, NMS), which meta tensors
cannot do. During the trace ``nonzero`` and NMS keep every candidate (an upper bound on the real
sizes), and an op that needs values (``.item()``, ``.tolist()``) raised after every head ran ends the
trace as completed, with a note.

The tracer only records: it never diagnoses. ``check`` explains a failed trace (``result.error``) and
enriches it with what the model's family knows.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headfit.modulepath import module_name
from headfit.nnutil import is_within

if TYPE_CHECKING:
    import torch
    from torch import nn

_LIBRARIES = {"torch", "torchvision", "timm"}  # whose forward hooks compute rather than observe
DATA_DEPENDENT_NOTE = "post-processing is data-dependent and was not traced"

# Fragments of the errors meta tensors raise when an op needs the values, not just the shapes.
_DATA_DEPENDENT_SIGNS = (
    "cannot be called on meta tensors",
    "cannot copy out of meta tensor",
    "aten::nonzero",
    "torch.nonzero()",
    "data-dependent",
    "data dependent",
    "with meta tensors (as opposed to faketensors)",
)


@dataclass
class ModuleCall:
    """One call of one submodule during the trace."""

    module: str  # path in the user's model.named_modules(); "" is the model itself
    type: str
    input_shapes: list[list[int]] = field(default_factory=list)
    output_shapes: list[list[int]] = field(default_factory=list)
    params: int = 0  # parameters of the module and its children (as torchinfo counts them)
    returned: bool = False  # False when the forward raised inside this call

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "type": self.type,
            "input_shapes": self.input_shapes,
            "output_shapes": self.output_shapes,
            "params": self.params,
        }


@dataclass
class TraceResult:
    """What the trace saw. ``error`` is set when the forward raised something other than post-processing."""

    completed: bool
    calls: list[ModuleCall] = field(default_factory=list)
    stopped_at: str | None = None
    reason: str | None = None
    error: BaseException | None = None
    notes: list[str] = field(default_factory=list)
    output: Any = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def stopped_call(self) -> ModuleCall | None:
        """The call of ``stopped_at`` that was running when the forward raised."""
        for call in reversed(self.calls):
            if call.module == self.stopped_at and not call.returned:
                return call
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "stopped_at": self.stopped_at,
            "reason": self.reason,
            "modules": [c.to_dict() for c in self.calls],
        }


def meta_replica(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose tensors are all on the meta device; it shares and allocates no storage."""
    memo: dict[int, Any] = {}
    for tensor in _model_tensors(model):
        if tensor is not None and id(tensor) not in memo:
            memo[id(tensor)] = _meta_like(tensor)
    try:
        replica = copy.deepcopy(model, dict(memo))
    except Exception:  # an attribute that cannot be copied (a lock, an open file): share it instead
        _share_uncopyable(model, memo)
        replica = _copy_or_explain(model, memo)
    _metafy_script_modules(replica)
    _drop_user_hooks(replica)
    return replica


def trace(
    model: nn.Module,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    train: bool = False,
    head_paths: list[str] | None = None,
    replica: nn.Module | None = None,
    simulate: bool = False,
) -> TraceResult:
    """Run ``model(*args, **kwargs)`` on a meta replica and record every submodule call.

    Tensors in ``args``/``kwargs`` may live anywhere: only their shapes and dtypes are used.
    ``head_paths`` are the class-dependent layers: a data-dependent op raised after all of them ran
    completes the trace; one raised before leaves it incomplete (still not an error of the model).
    ``replica`` reuses a ``meta_replica(model)`` across traces (size probing). ``simulate`` starts
    with the value-selecting ops simulated (the family knows its forward needs it) instead of
    running once plainly and again when that stopped before a head.
    """
    replica = replica if replica is not None else meta_replica(model)
    replica.train(train)
    paths = {id(m): name for name, m in replica.named_modules()}
    meta_args, meta_kwargs = _to_meta((tuple(args), dict(kwargs or {})))
    heads = head_paths or []
    run = _run(replica, paths, meta_args, meta_kwargs, simulate=simulate)
    if not simulate and run.error is not None and _needs_simulation(run, heads):
        run = _run(replica, paths, meta_args, meta_kwargs, simulate=True)
    if run.error is not None:
        return _result_of_failure(run.error, run.recorder, run.notes, heads)
    return TraceResult(True, run.recorder.calls, notes=run.notes, output=run.output)


@dataclass
class _Run:
    recorder: _Recorder
    notes: list[str]
    output: Any = None
    error: Exception | None = None


def _run(replica: nn.Module, paths: dict[int, str], args: tuple, kwargs: dict, simulate: bool) -> _Run:
    """One hooked forward of the replica; ``simulate`` adds the dispatch mode (slower, see below)."""
    import torch

    recorder = _Recorder(paths)
    run = _Run(recorder, recorder.attach(replica))
    try:
        with torch.no_grad(), _keep_all_candidates(simulate):
            run.output = _eager(replica, run.notes)(*args, **kwargs)
    except Exception as exc:  # the model's own error: that is what the trace is for
        run.error = exc
    finally:
        recorder.detach()
    return run


def _eager(replica: nn.Module, notes: list[str]) -> nn.Module:
    """The module to call: a ``torch.compile``d model runs its original module (the compiled graph would
    hide every submodule from the hooks, and compiling for meta tensors only to trace is wasted)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # loaded whenever a compiled model exists
    if eval_frame is not None and isinstance(replica, eval_frame.OptimizedModule):
        notes.append("the model is `torch.compile`d: its original module `_orig_mod` was traced eagerly")
        return replica._orig_mod
    return replica


def _needs_simulation(run: _Run, head_paths: list[str]) -> bool:
    """Rerun with value-selecting ops simulated when they stopped the trace before a head ran, or when
    the forward mixed a device-less tensor with meta ones."""
    text = str(run.error).lower()
    if "device" in text and "meta" in text and "cpu" in text:
        return True
    return is_data_dependent(run.error) and any(not _ran(p, run.recorder.calls) for p in head_paths)


def is_data_dependent(exc: BaseException) -> bool:
    """Whether ``exc`` is meta's refusal to compute something that depends on tensor values."""
    if not isinstance(exc, (NotImplementedError, RuntimeError)):
        return False
    text = str(exc).lower()
    return any(sign in text for sign in _DATA_DEPENDENT_SIGNS)


def shapes_of(value: Any) -> list[list[int]]:
    """The shapes of every tensor in a nested value (tuples, lists, dicts, namedtuples, ImageList)."""
    import torch
    from torch.utils._pytree import tree_leaves

    shapes = []
    for leaf in tree_leaves(value):
        leaf = getattr(leaf, "tensors", leaf)  # torchvision's ImageList holds the batched images
        if isinstance(leaf, torch.Tensor):
            shapes.append(list(leaf.shape))
    return shapes


class _Recorder:
    """Forward pre/post hooks on every submodule; a stack of the calls that are running."""

    def __init__(self, paths: dict[int, str]) -> None:
        self.paths = paths
        self.calls: list[ModuleCall] = []
        self.running: list[ModuleCall] = []
        self.handles: list[Any] = []
        self.param_counts: dict[int, int] = {}

    def attach(self, replica: nn.Module) -> list[str]:
        """Hook every submodule; return notes for the ones that refuse hooks (TorchScript)."""
        skipped = []
        for module in replica.modules():
            try:
                self.handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._post, with_kwargs=True))
            except RuntimeError:  # ScriptModules do not take Python hooks
                skipped.append(self.paths.get(id(module), "?"))
        outermost = [p for p in skipped if not any(p != q and is_within(p, q) for q in skipped)]
        return [
            f"`{module_name(p)}` is TorchScript: its insides were run but not recorded" for p in outermost
        ]

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        call = ModuleCall(
            module=self.paths.get(id(module), "?"),
            type=type(module).__name__,
            input_shapes=shapes_of((args, kwargs)),
            params=self._params(module),
        )
        self.calls.append(call)
        self.running.append(call)

    def _params(self, module: nn.Module) -> int:
        key = id(module)
        if key not in self.param_counts:
            self.param_counts[key] = sum(p.numel() for p in module.parameters())
        return self.param_counts[key]

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        path = self.paths.get(id(module), "?")
        # pop to this module's call: a child that raised inside a try/except never posted
        while self.running:
            call = self.running.pop()
            if call.module == path:
                call.output_shapes = shapes_of(output)
                call.returned = True
                break

    def innermost_in(self, exc: BaseException) -> str:
        """The path of the innermost module whose ``__call__`` the traceback of ``exc`` passes through.

        The traceback is exact even when the forward caught an earlier error of a child (which left
        that child's call unfinished on the stack); the stack answers when no frame is found.
        """
        from torch.nn import Module

        innermost = None
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code is Module._call_impl.__code__ and id(frame.f_locals.get("self")) in self.paths:
                innermost = self.paths[id(frame.f_locals["self"])]
            tb = tb.tb_next
        if innermost is not None:
            return innermost
        return self.running[-1].module if self.running else ""


def _result_of_failure(
    exc: BaseException, recorder: _Recorder, notes: list[str], head_paths: list[str]
) -> TraceResult:
    stopped_at = recorder.innermost_in(exc)
    if is_data_dependent(exc):
        missing = [p for p in head_paths if not _ran(p, recorder.calls)]
        if not missing:
            return TraceResult(True, recorder.calls, notes=[*notes, DATA_DEPENDENT_NOTE])
        reason = f"{DATA_DEPENDENT_NOTE}; it runs before {', '.join(f'`{module_name(p)}`' for p in missing)}"
        return TraceResult(False, recorder.calls, stopped_at=stopped_at, reason=reason, notes=notes)
    reason = f"{type(exc).__name__}: {_first_line(str(exc))}"
    return TraceResult(False, recorder.calls, stopped_at=stopped_at, reason=reason, error=exc, notes=notes)


def _ran(path: str, calls: list[ModuleCall]) -> bool:
    return any(c.returned and is_within(c.module, path) for c in calls)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@contextmanager
def _keep_all_candidates(simulate: bool) -> Iterator[None]:
    """Let meta ``nonzero`` (boolean masks, ``torch.where``) keep every candidate; with ``simulate``
    also ``unique`` and NMS, and let device-less tensors join meta ones (a Python dispatch mode: ~30%
    slower, so only when a first run needed it)."""
    from torch.fx.experimental import _config as fx_config

    with fx_config.patch(meta_nonzero_assume_all_nonzero=True):
        if not simulate:
            yield
            return
        with _meta_simulation():
            yield


def _meta_simulation() -> Any:
    """A dispatch mode for the trace: value-selecting ops keep everything; CPU operands join meta ones.

    A model whose forward makes a tensor without a device (``torch.arange(n)``) and combines it with a
    parameter would run on any one device; on meta it would mix devices, so such operands become meta.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten, tree_map

    keep_all = {torch.ops.aten._unique2.default: _unique_all}
    if "torchvision" in sys.modules:  # never import torchvision just for this
        keep_all[torch.ops.torchvision.nms.default] = _nms_all

    class MetaSimulation(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            if any(t.is_meta for t in tensors):
                if func in keep_all:
                    return keep_all[func](*args, **kwargs)
                if not all(t.is_meta for t in tensors):
                    args, kwargs = tree_map(_leaf_to_meta, (args, kwargs))
            return func(*args, **kwargs)

    return MetaSimulation()


def _nms_all(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS that suppresses nothing: the most boxes a real NMS can keep."""
    import torch

    return torch.arange(boxes.shape[0], device="meta")


def _unique_all(
    x: torch.Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.unique`` as if every element were equal, so loops over the distinct values run once
    (per-class NMS loops over its classes) while the masks built from it still keep everything."""
    values = x.new_empty((1,))
    inverse = x.new_empty(x.shape if return_inverse else (0,), dtype=_long())
    counts = x.new_empty((1,) if return_counts else (0,), dtype=_long())
    return values, inverse, counts


def _long() -> Any:
    import torch

    return torch.long


def _model_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Parameters, buffers and plain tensor attributes (and lists of them, e.g. cached anchors)."""
    import torch

    for module in model.modules():
        yield from module._parameters.values()
        yield from module._buffers.values()
        seen: set[int] = set()
        for value in vars(module).values():
            yield from _held_tensors(value, torch.Tensor, seen)


def _held_tensors(value: Any, tensor_type: type, seen: set[int], depth: int = 0) -> Iterator[Any]:
    """Tensors in plain lists, tuples and dicts (nested, e.g. a dict of cached anchors per size): the
    memo maps each to a meta tensor, so ``deepcopy`` never copies their data (640 MB cost +300 MB)."""
    if isinstance(value, tensor_type):
        yield value
        return
    if depth > 8 or id(value) in seen or not isinstance(value, (list, tuple, dict)):
        return
    seen.add(id(value))
    for item in value.values() if isinstance(value, dict) else value:
        yield from _held_tensors(item, tensor_type, seen, depth + 1)


def _meta_like(tensor: torch.Tensor | None) -> Any:
    import torch
    from torch import nn

    if tensor is None:
        return None
    meta = torch.empty_like(tensor, device="meta")
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(meta, requires_grad=tensor.requires_grad)
    return meta


def _share_uncopyable(model: nn.Module, memo: dict[int, Any]) -> None:
    """Let the replica share the plain attributes that ``deepcopy`` refuses (locks, files, clients)."""
    from torch import nn

    for module in model.modules():
        for name, value in vars(module).items():
            if name.startswith("_") or isinstance(value, nn.Module) or id(value) in memo:
                continue
            try:
                copy.deepcopy(value, dict(memo))
            except Exception:
                memo[id(value)] = value


def _copy_or_explain(model: nn.Module, memo: dict[int, Any]) -> nn.Module:
    from headfit.errors import UsageError

    try:
        return copy.deepcopy(model, memo)
    except Exception as exc:
        raise UsageError(
            f"headfit cannot copy `{type(model).__name__}` to trace it on the meta device: `copy.deepcopy` "
            f"raised {type(exc).__name__}: {exc}. The trace needs a copy so that your model stays "
            "untouched; make the model deep-copyable (keep locks, open files and clients outside it)."
        ) from None


def _drop_user_hooks(replica: nn.Module) -> None:
    """The user's forward hooks must not see the trace (they may record into the user's objects);
    library hooks (torch's old-style weight norm and spectral norm) are part of the computation and stay."""
    for module in replica.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key in [k for k, hook in hooks.items() if not _is_library_hook(hook)]:
                del hooks[key]


def _is_library_hook(hook: Any) -> bool:
    owner = getattr(hook, "__module__", None) or type(hook).__module__
    return owner.partition(".")[0] in _LIBRARIES


def _metafy_script_modules(replica: nn.Module) -> None:
    """TorchScript ignores the deepcopy memo and copies its tensors: swap the copies for meta ones.

    (A scripted model therefore takes its size in memory for the moment of the copy.)"""
    import torch

    for module in replica.modules():
        if isinstance(module, torch.jit.ScriptModule):
            for name, tensor in list(module.named_parameters(recurse=False)):
                setattr(module, name, _meta_like(tensor))
            for name, tensor in list(module.named_buffers(recurse=False)):
                setattr(module, name, _meta_like(tensor))


def _to_meta(value: Any) -> Any:
    """``value`` with every tensor in it (nested in tuples, lists, dicts) replaced by a meta tensor."""
    from torch.utils._pytree import tree_map

    return tree_map(_leaf_to_meta, value)


def _leaf_to_meta(leaf: Any) -> Any:
    import torch

    if isinstance(leaf, torch.Tensor) and not leaf.is_meta:
        return torch.empty_like(leaf, device="meta")
    return leaf
