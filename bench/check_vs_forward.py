"""In-process ``headfit.check`` against a bare meta-device forward of the same model, for every
torchvision detection builder.

    python bench/check_vs_forward.py              # every builder: check, forward, ratio
    python bench/check_vs_forward.py fcos_resnet50_fpn maskrcnn_resnet50_fpn

The floor is what check cannot avoid: the model (built on meta, so the copy costs what it would cost
the user) run on meta tensors of the same input under ``torch.no_grad``: the same forwards the trace
runs, with its stand-ins for value-selecting ops, each up to where the trace stops too. ``check`` adds the
replica, the hooks that record every call, the family's lint and the report. Each time is the
process's CPU time (one torch thread; wall time on a shared machine measures the neighbours), the best
of ``REPEATS`` after one warm-up, the two taking turns so that a slow spell of the machine hits both.
Target (issue 14): every builder within 1.5x.
"""

from __future__ import annotations

import sys
import time
from typing import Any

REPEATS = 7
INPUT = "[3x512x512]"
TARGET = 1.5


def builders() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.detection))


def cpu_seconds(fn: Any) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def best_of_turns(first: Any, second: Any) -> tuple[float, float]:
    """The best CPU time of each of two functions run in turns, after one warm-up of each (first-call
    caches: dispatch tables, lazy imports)."""
    first(), second()
    turns = [(cpu_seconds(first), cpu_seconds(second)) for _ in range(REPEATS)]
    return min(a for a, _ in turns), min(b for _, b in turns)


def measure(name: str) -> tuple[float, float, bool]:
    import torch

    import headfit
    from headfit.inputs import InputSpec
    from headfit.spec import build_model
    from headfit.trace import _keep_all_candidates, is_data_dependent

    model = build_model(f"torchvision:{name}", device="meta").eval()
    images = InputSpec.parse(INPUT).make("meta")

    runs = _runs_of_check(model)

    def forward() -> None:
        """The forwards check's trace ran (plain, and again with the NMS / ``unique`` stand-ins when
        meta stopped the first before a head ran); an op that needs values ends each, as in the trace."""
        with torch.no_grad():
            for simulate in runs:
                try:
                    with _keep_all_candidates(simulate):
                        model(images)
                except (RuntimeError, NotImplementedError) as exc:
                    if not (is_data_dependent(exc) or "meta" in str(exc).lower()):
                        raise

    report = headfit.check(model, INPUT)
    return (*best_of_turns(lambda: headfit.check(model, INPUT), forward), report.ok)


def _runs_of_check(model: Any) -> list[bool]:
    """Which forwards check's trace runs on this model: ``[False]`` or ``[False, True]`` (simulated)."""
    import headfit
    from headfit import trace

    runs: list[bool] = []
    run = trace._run

    def recording(replica, paths, args, kwargs, simulate):
        runs.append(simulate)
        return run(replica, paths, args, kwargs, simulate)

    trace._run = recording
    try:
        headfit.check(model, INPUT)
    finally:
        trace._run = run
    return runs


def main(names: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    rows = []
    for name in names or builders():
        check_s, forward_s, ok = measure(name)
        rows.append((name, check_s, forward_s, check_s / forward_s, ok))
        print(f"{name:42s} check {check_s * 1000:7.0f} ms   forward {forward_s * 1000:7.0f} ms   "
              f"{check_s / forward_s:4.2f}x{'' if ok else '  (check found a problem)'}", flush=True)
    worst = max(rows, key=lambda r: r[3])
    verdict = "within" if worst[3] <= TARGET else "NOT within"
    print(f"\nworst: {worst[0]} at {worst[3]:.2f}x; every builder {verdict} {TARGET}x of its bare meta forward")


if __name__ == "__main__":
    main(sys.argv[1:])
