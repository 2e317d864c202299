"""headfit: precise diagnoses of PyTorch shape errors, a meta-device pre-flight for models, and
re-heading pretrained models for K classes the right way.

Importing headfit does not import torch; each function imports what it needs when called.
"""

from __future__ import annotations

import sys as _sys
import types as _types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from headfit.diagnosis import Diagnosis

__all__ = [
    "explain",
    "check",
    "adapt",
    "load_weights",
    "install",
    "diagnosing",
    "load_ipython_extension",
    "__version__",
]


def explain(error_or_text: BaseException | str) -> Diagnosis:
    """Diagnose an exception object, an error message or a pasted traceback (no torch import)."""
    from headfit.explain import explain as _explain

    return _explain(error_or_text)


def check(model: Any, inputs: Any = None, **options: Any) -> Any:
    """Lint the model's heads and trace it on the meta device; returns a CheckReport."""
    from headfit.check import check as _check

    return _check(_a_module(model, "check"), inputs, **options)


def adapt(model: Any, num_classes: int, **options: Any) -> Any:
    """Re-head ``model`` in place for ``num_classes`` classes, keeping every weight that fits; returns it."""
    from headfit.adapt import adapt as _adapt

    return _adapt(_a_module(model, "adapt"), num_classes, **options)


def load_weights(model: Any, source: Any, **options: Any) -> Any:
    """Load a checkpoint safely (weights_only / safetensors), skipping what does not fit; returns a LoadReport."""
    from collections.abc import Mapping
    from os import PathLike

    from headfit.weights import load_weights as _load_weights

    if not isinstance(source, (str, PathLike, Mapping)):
        raise TypeError(
            "load_weights() needs a checkpoint: a path to a .pt/.pth/.bin/.safetensors file or a state_dict, "
            f"not {type(source).__name__}"
        )
    return _load_weights(_a_module(model, "load_weights"), source, **options)


def _a_module(model: Any, function: str) -> Any:
    """``model`` itself when it is an nn.Module; a TypeError that says how to get one otherwise."""
    torch = _sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return model
    hint = (
        f" Build it first: `model = headfit.spec.build_model({model!r})`." if isinstance(model, str) else ""
    )
    raise TypeError(f"{function}() takes a torch.nn.Module, not {type(model).__name__}.{hint}")


def install() -> None:
    """Explain uncaught exceptions of this program with live objects (sets sys.excepthook)."""
    from headfit.live import install as _install

    _install()


def diagnosing(**options: Any) -> Any:
    """Context manager: print a diagnosis of an exception raised inside it, then re-raise it."""
    from headfit.live import diagnosing as _diagnosing

    return _diagnosing(**options)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext headfit``: diagnose exceptions in IPython/Jupyter after the normal traceback."""
    from headfit.live import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from headfit.live import unload_ipython_extension as _unload

    _unload(ipython)


_FUNCTIONS = {name: globals()[name] for name in __all__ if callable(globals().get(name))}


class _CallableModule(_types.ModuleType):
    """A submodule named like a public function (``headfit.check``, ``headfit.explain``) that also
    answers calls with that function: importing the submodule rebinds the package attribute to it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _FUNCTIONS[self.__name__.rpartition(".")[2]](*args, **kwargs)


class _Package(_types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS and type(value) is _types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
