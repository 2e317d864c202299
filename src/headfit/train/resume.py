"""``headfit train --resume RUN``: the same trainer rebuilt from ``RUN/args.json`` and ``state.pt``.

What may change on resume is ``RESUMABLE``: more epochs extend a finished run, a lower lr after a
non-finite loss, another device. The data may move but must keep its fingerprint; a builder outside
torchvision, timm and headfit runs only with ``--trust-code`` (a run folder may come from elsewhere).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from headfit.errors import UsageError
from headfit.train.plan import TrainPlan
from headfit.train.prepare import Prepared, TrainOptions, assemble

# the data may move (its fingerprint must not change); the rest is the run's own
RESUMABLE = (
    "epochs", "lr", "device", "workers", "save_every", "patience", "amp", "data", "val", "sync_bn", "dist_timeout",
)  # fmt: skip


def prepare_resume(run: Path, overrides: dict[str, Any], *, trust_code: bool = False) -> Prepared:
    """The trainer of the run in ``run``, continued where its state was saved.

    ``overrides`` may change ``epochs`` (more epochs extend a finished run), ``lr``, ``device``,
    ``workers``, ``save_every``, ``patience`` and ``amp``; the data must have the fingerprint it had.
    """
    from headfit.train.rundir import read_args
    from headfit.train.state import STATE_FILE, load_state

    args = read_args(run)
    unknown = sorted(set(overrides) - set(RESUMABLE))
    if unknown:
        raise UsageError(
            f"--resume continues {run} with its own model, data and settings; "
            f"{', '.join('--' + k.replace('_', '-') for k in unknown)} cannot change on resume (it may change "
            f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)}). Start a new run to change the rest"
        )
    state_path = run / STATE_FILE
    if not state_path.is_file():
        raise UsageError(
            f"{run} has no {STATE_FILE}: the run stopped before its first save (at the first --save-every "
            "interval or the end of the first epoch), so there is nothing to resume; start it again"
        )
    state = load_state(state_path)
    saved = _options_from(args)
    options = replace(saved, **overrides, resume=run, trust_code=trust_code)
    _refuse_untrusted_resume(args["model"], run, trust_code)
    done = int(state["position"][0])
    options = replace(options, epochs=_resumed_epochs(overrides.get("epochs"), args, done, run))
    plan = TrainPlan(run=run, resumed=f"epoch {done + 1}, batch {int(state['position'][1])}")
    prepared = assemble(options, plan, resume=(args, state))
    return prepared


def _options_from(args: dict[str, Any]) -> TrainOptions:
    saved = dict(args.get("options") or {})
    for name in ("data", "val", "weights", "project", "resume"):
        if saved.get(name) is not None:
            saved[name] = Path(saved[name])
    saved["freeze"] = tuple(saved.get("freeze") or ())
    known = set(TrainOptions.__dataclass_fields__)
    return TrainOptions(**{k: v for k, v in saved.items() if k in known})


def _resumed_epochs(epochs: int | None, args: dict[str, Any], done: int, run: Path) -> int:
    planned = int(args["epochs"])
    if epochs is None:
        if done >= planned:
            raise UsageError(
                f"{run} finished all {planned} of its epochs; give `--epochs N` with N > {planned} to train "
                f"it further (`headfit train --resume {run} --epochs {planned + 10}`)"
            )
        return planned
    if epochs <= done:
        raise UsageError(f"--epochs {epochs}: {run} has already trained {done} epochs; give more than {done}")
    return epochs


def _refuse_untrusted_resume(spec: str, run: Path, trust_code: bool) -> None:
    from headfit.spec import names_a_library_builder

    source, _, name = spec.rpartition(":")
    if trust_code or names_a_library_builder(spec):
        return
    raise UsageError(
        f"{run}/args.json says the model is built by `{spec}`: resuming would import `{source}` and call "
        f"`{name}`; headfit runs a builder without asking only when it is a `torchvision:` or `timm:` one. "
        "If you trust that code, pass `--trust-code` (as you trust it when you started the run)"
    )
