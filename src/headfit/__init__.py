"""headfit: precise diagnoses of PyTorch shape errors, a meta-device pre-flight for models, and
re-heading pretrained models for K classes the right way.

Importing headfit does not import torch: each name below is the real function or class, imported
from its module on first use (PEP 562 ``__getattr__``), so ``help(headfit.adapt)`` shows its
signature. ``headfit.check``, ``headfit.adapt``, ``headfit.sizes`` and ``headfit.explain`` are always
the functions, also after their modules were imported; reach a module itself with
``from headfit.check import CheckReport`` or ``importlib.import_module("headfit.check")``.
"""

from __future__ import annotations

import sys as _sys
import types as _types
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "explain": "headfit.explain",
    "check": "headfit.check",
    "sizes": "headfit.sizes",
    "adapt": "headfit.adapt",
    "adapt_with_report": "headfit.adapt",
    "load_weights": "headfit.weights",
    "load_model": "headfit.saved",
    "rebuild": "headfit.saved",
    "install": "headfit.live",
    "diagnosing": "headfit.live",
    "load_ipython_extension": "headfit.live",
    "unload_ipython_extension": "headfit.live",
    "render": "headfit.render",
    # the report types the functions return
    "Diagnosis": "headfit.diagnosis",
    "Cause": "headfit.diagnosis",
    "Location": "headfit.diagnosis",
    "Problem": "headfit.diagnosis",
    "CheckReport": "headfit.check",
    "SizeAnswer": "headfit.sizes",
    "AdaptOptions": "headfit.adapt",
    "AdaptReport": "headfit.adapt",
    "LoadReport": "headfit.weights",
    "InputSpec": "headfit.inputs",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'headfit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("headfit")
    except PackageNotFoundError:  # a source tree on sys.path that pip never installed
        return "unknown"


class _Package(_types.ModuleType):
    """headfit's module type: importing a submodule named like a public function (``headfit.check``)
    makes the import system bind the submodule to the package attribute; the function stays there."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, _types.ModuleType) and value.__name__ == _EXPORTS[name]:
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
