"""The resume state: one file holding everything an interrupted run needs to continue exactly.

``RUN/state.pt`` holds the model, optimizer, scheduler, GradScaler and EMA state dicts, the RNG
states (torch, CUDA, Python, NumPy), the position in the epoch (epoch, batches done) and the loop's
bookkeeping (best score, epochs without improvement). It contains only tensors, numbers, strings
and containers, so it loads with ``torch.load(weights_only=True)``: resuming never unpickles code.
It is written atomically, so a kill -9 while saving leaves the previous state intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headfit.errors import UsageError
from headfit.files import atomic_write
from headfit.train.rundir import RESUME_ADVICE

STATE_FILE = "state.pt"
FORMAT = 1


def capture_rng() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(mt), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format version) to ``path`` atomically."""
    document = {"format": FORMAT, **state}
    atomic_write(path, lambda file: torch.save(document, file), RESUME_ADVICE)


def load_state(path: Path) -> dict[str, Any]:
    """The state saved at ``path``, read with ``weights_only=True``."""
    if not path.is_file():
        raise UsageError(f"{str(path)!r} does not exist, so there is nothing to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same paragraph
        raise UsageError(
            f"cannot read the resume state {str(path)!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "it is not a state file written by `headfit train`"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{str(path)!r} is not a resume state written by this version of `headfit train`")
    return state
