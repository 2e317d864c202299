"""In-process ``headfit.check`` against a bare meta-device forward of the same model, for every
torchvision detection builder.

    python bench/check_vs_forward.py              # every builder: check, forward, ratio
    python bench/check_vs_forward.py fcos_resnet50_fpn maskrcnn_resnet50_fpn

The floor is what check cannot avoid: the model (built on meta, so the copy costs what it would cost
the user) run once on meta tensors of the same input, under ``torch.no_grad`` and the same stand-ins
for value-selecting ops (NMS, ``nonzero``) that let the trace reach the end. ``check`` adds the
replica, the hooks that record every call, the family's lint and the report. Each time is the best
of ``REPEATS`` after one warm-up. Target (issue 14): every builder within 1.5x.
"""

from __future__ import annotations

import sys
import time
from typing import Any

REPEATS = 3
INPUT = "[3x512x512]"
TARGET = 1.5


def builders() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.detection))


def best_of(fn: Any) -> float:
    fn()  # warm-up: first-call caches (dispatch tables, lazy imports)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str) -> tuple[float, float, bool]:
    import torch

    import headfit
    from headfit.inputs import InputSpec
    from headfit.spec import build_model
    from headfit.trace import _keep_all_candidates

    model = build_model(f"torchvision:{name}", device="meta").eval()
    images = InputSpec.parse(INPUT).make("meta")

    def forward() -> None:
        with torch.no_grad(), _keep_all_candidates(True):
            model(images)

    report = headfit.check(model, INPUT)
    return best_of(lambda: headfit.check(model, INPUT)), best_of(forward), report.ok


def main(names: list[str]) -> None:
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
