"""MODEL specs: ``torchvision:NAME``, ``timm:NAME``, ``path/to/file.py:CALLABLE``, ``package.module:CALLABLE``.

Builders are always called without downloading weights. Every failure is a ModelSpecError: one
paragraph that says what was wrong and what to do (the CLI turns it into exit code 2).

This module builds what a spec names and nothing else: saved models (``X.safetensors`` + its sidecar)
are ``saved.py``'s, and ``saved.load_model`` is the one resolver that takes either.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headfit.errors import ModelSpecError, UsageError

if TYPE_CHECKING:
    from torch import nn

MAX_CLASSES = 2**31 - 1  # class ids are int32 in places; a larger head is a typo, not a model

_EXAMPLES = (
    "Use `torchvision:NAME` (e.g. `torchvision:fcos_resnet50_fpn`), `timm:NAME` (e.g. `timm:resnet18`), "
    "`path/to/file.py:CALLABLE` or `package.module:CALLABLE`."
)


def check_class_count(value: Any, what: str = "`num_classes`") -> int:
    """``value`` when it is a class count headfit can build (1 .. 2^31-1); a UsageError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CLASSES:
        raise UsageError(
            f"{what} must be a whole number >= 1 and at most {MAX_CLASSES:,} (your object classes; the "
            f"background is added where the model counts one), got {value!r}"
        )
    return value


def build_model(spec: str, num_classes: int | None = None, device: str | None = None) -> nn.Module:
    """Build the model a spec names, with ``num_classes`` passed to the builder as it is.

    ``num_classes`` is the builder's own argument: for torchvision detectors it counts the background
    (``saved.load_model`` takes object classes and adds it). ``device="meta"`` builds without
    allocating parameter memory (for sweeps and size probing).
    """
    if num_classes is not None:
        check_class_count(num_classes)
    source, sep, name = spec.rpartition(":")  # the last colon: a folder may have one in its name
    if not sep or not source or not name:
        raise ModelSpecError(f"cannot read the model spec {spec!r}.{_spec_hint(spec)} {_EXAMPLES}")
    if source == "torchvision":
        build = lambda: _build_torchvision(name, num_classes)  # noqa: E731
    elif source == "timm":
        build = lambda: _build_timm(name, num_classes)  # noqa: E731
    else:
        build = lambda: _build_callable(source, name, num_classes, spec)  # noqa: E731
    if device is None:
        return _checked(build(), spec)
    if str(device) == "meta":
        return _checked(_build_on_meta(build), spec)
    import torch

    with torch.device(device):
        return _checked(build(), spec)


def _spec_hint(spec: str) -> str:
    """What a spec without its ``source:`` or ``:CALLABLE`` part most likely meant."""
    if spec.endswith(".py"):
        return f" Name the function or class that builds the model after a colon: `{spec}:CALLABLE`."
    if spec and ":" not in spec and "/" not in spec:
        import torchvision

        if spec in torchvision.models.list_models():
            return f" Did you mean `torchvision:{spec}`?"
    return ""


def _build_on_meta(build: Any) -> nn.Module:
    """Build with every parameter and buffer on the meta device (no memory, no init time).

    Most builders run under ``torch.device("meta")``. A few compute with real tensors while building
    (torchvision's RegNet derives its widths with ``torch.arange``); for those, run the builder on the
    CPU but register each parameter and buffer on meta as it is created, as accelerate's
    ``init_empty_weights`` does.
    """
    import torch

    try:
        with torch.device("meta"):
            return build()
    except ModelSpecError as exc:
        if "meta" not in str(exc).lower():
            raise
    with _parameters_on_meta():
        return build()


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    from torch import nn

    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def on_meta_parameter(module, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def on_meta_buffer(module, name, tensor, persistent=True):
        if tensor is not None:
            tensor = tensor.to("meta")
        register_buffer(module, name, tensor, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = on_meta_parameter, on_meta_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def _checked(model: Any, spec: str) -> nn.Module:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"the model spec {spec!r} returned a {type(model).__name__}, not a torch.nn.Module. "
            "Point the spec at a function or class that returns the model itself."
        )
    return model


def _build_torchvision(name: str, num_classes: int | None) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(f'`torchvision:{c}`' for c in close)}?" if close else ""
        raise ModelSpecError(
            f"torchvision has no model builder named {name!r}.{hint} "
            "`python -c 'import torchvision; print(torchvision.models.list_models())'` lists them all."
        )
    builder = torchvision.models.get_model_builder(name)
    kwargs = _no_download_kwargs(builder)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return _call_builder(builder, kwargs, f"torchvision:{name}")


def _no_download_kwargs(builder: Any) -> dict[str, Any]:
    params = inspect.signature(builder).parameters
    kwargs: dict[str, Any] = {"weights": None}
    if "weights_backbone" in params:
        kwargs["weights_backbone"] = None
    return kwargs


def _build_timm(name: str, num_classes: int | None) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ModelSpecError(
            f"the model spec `timm:{name}` needs timm, which is not installed. "
            "Install it with `pip install 'headfit[timm]'`."
        ) from None
    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:3]
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ModelSpecError(
            f"timm has no model named {name!r}.{hint} `timm.list_models('*pattern*')` searches them."
        )
    kwargs: dict[str, Any] = {"pretrained": False}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return _call_builder(lambda **kw: timm.create_model(name, **kw), kwargs, f"timm:{name}")


def _build_callable(source: str, attr: str, num_classes: int | None, spec: str) -> nn.Module:
    from torch import nn

    target = _load_attribute(source, attr, spec)
    if isinstance(target, nn.Module) or not callable(target):  # a module-level model instance
        if num_classes is not None:
            raise ModelSpecError(
                f"--num-classes was given but {spec!r} is a model instance, not a builder. "
                "Drop --num-classes, or point the spec at a function that takes `num_classes`."
            )
        return target
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        if not _accepts(target, "num_classes"):
            raise ModelSpecError(
                f"--num-classes was given but {spec!r} takes no `num_classes` argument. "
                "Drop --num-classes, or add a `num_classes` parameter to the builder."
            )
        kwargs["num_classes"] = num_classes
    return _call_builder(target, kwargs, spec)


def _load_attribute(source: str, attr: str, spec: str) -> Any:
    if source.endswith(".py") or "/" in source or "\\" in source:
        path = Path(source)
        if not path.is_file():
            raise ModelSpecError(
                f"the model file {source!r} of the spec {spec!r} does not exist. {_EXAMPLES}"
            )
        module = _import_file(path, spec)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ModelSpecError(
                f"cannot import the module {source!r} of the spec {spec!r} ({exc}). "
                "Check that it is installed or on PYTHONPATH, or give a path to a .py file instead."
            ) from None
        except SystemExit as exc:
            raise ModelSpecError(_exited_on_import(repr(source), exc)) from None
        except Exception as exc:  # the module raised while importing
            raise ModelSpecError(
                f"importing the module {source!r} of the spec {spec!r} raised {type(exc).__name__}: "
                f"{_without_backtrace(exc)}. Fix it so that `python -c 'import {source}'` works, then try again."
            ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelSpecError(
                f"{source!r} has no attribute {attr!r} (from the spec {spec!r}). "
                "Name the function or class that builds your model after the colon."
            )
        obj = getattr(obj, part)
    return obj


def _import_file(path: Path, spec: str) -> Any:
    name = f"headfit_user_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ModelSpecError(f"cannot import {str(path)!r} as Python (spec {spec!r}).")
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as exc:
        raise ModelSpecError(_exited_on_import(repr(str(path)), exc)) from None
    except Exception as exc:  # the user's file raised while importing
        raise ModelSpecError(
            f"importing {str(path)!r} raised {type(exc).__name__}: {_without_backtrace(exc)}. Fix the file so that "
            "`python -c 'import runpy; runpy.run_path(\"" + str(path) + "\")'` works, then try again."
        ) from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _exited_on_import(what: str, exc: SystemExit) -> str:
    """A module that exits when imported: argparse's parse_args() or sys.exit() at module level."""
    return (
        f"importing {what} exited (SystemExit: {exc.code}): it runs a script when imported. Put that "
        'code under `if __name__ == "__main__":` so the spec can import the builder without running it.'
    )


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _call_builder(builder: Any, kwargs: dict[str, Any], spec: str) -> nn.Module:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return builder(**kwargs)
    except (Exception, SystemExit) as exc:  # SystemExit: a builder that parses argv or calls exit()
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        raise ModelSpecError(
            f"building {spec!r} with {shown} raised {type(exc).__name__}: {_without_backtrace(exc)}. "
            "Check the builder's arguments (e.g. --num-classes), or wrap it in your own function "
            "and pass `path/to/file.py:FUNCTION`."
        ) from None


def _without_backtrace(exc: BaseException) -> str:
    """The message of ``exc`` without the C++ backtrace torch appends to some errors."""
    return str(exc).split("\nException raised from ", 1)[0].strip()


def names_a_library_builder(spec: str) -> bool:
    """Whether ``spec`` names a torchvision or timm model builder, which runs no code but the library's.

    The source is read as ``build_model`` reads it (everything before the last colon), so no spelling
    can reach a file or module through a ``torchvision:`` prefix. The builders then only reach their
    registries: ``torchvision:NAME`` must be in ``torchvision.models.list_models()`` and ``timm:NAME``
    must pass ``timm.is_model``, else building is a ModelSpecError before anything is called.
    """
    source, sep, name = spec.rpartition(":")
    return bool(sep and name) and source in ("torchvision", "timm")


def require_module(model: Any, function: str) -> None:
    """A TypeError that says how to get a model when ``function`` was given something else."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return
    hint = f" Build it first: `model = headfit.load_model({model!r})`." if isinstance(model, str) else ""
    raise TypeError(f"{function}() takes a torch.nn.Module, not {type(model).__name__}.{hint}")
