"""``headfit check`` against ``torchinfo.summary`` and a real CPU forward, on the same model and input.

    python bench/check_vs_torchinfo.py            # every measurement, then the table and the targets

Models: the seed (FCOS re-headed for 2 classes without `num_classes`, two 3x1333x762 images) and
resnet50 at 2x3x224x224. Each measurement runs in a fresh subprocess, so one tool's caches and freed
memory never help another; peak extra memory is the process's peak resident memory (VmHWM, reset via
/proc/self/clear_refs just before the call; ru_maxrss where that is not allowed) minus the resident
memory just before it. tracemalloc would not see torch's allocator.
Targets (issue 4): on the seed, check >= 20x faster than the forward and than torchinfo, and its extra
peak memory <= 1/5 of torchinfo's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

MODELS = ("seed", "resnet50")
TOOLS = ("check", "torchinfo", "forward")


def build(model_name: str) -> tuple[Any, Any, str]:
    """The model (real CPU weights, random init), its input, and the input in --input syntax."""
    import torch
    import torchvision

    if model_name == "seed":
        model = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
        model.head.classification_head.cls_logits = torch.nn.Conv2d(256, 2, 3, 1, 1)
        return model.eval(), [torch.rand(3, 1333, 762), torch.rand(3, 1333, 762)], "[3x1333x762]x2"
    model = torchvision.models.resnet50(weights=None)
    return model.eval(), torch.rand(2, 3, 224, 224), "2x3x224x224"


def run_tool(tool: str, model: Any, x: Any, spec: str) -> str:
    """Run one tool; return how it ended (its own failure is a result, not a crash of the bench)."""
    import torch

    if tool == "check":
        import headfit

        report = headfit.check(model, spec)
        return (
            "ok"
            if report.ok
            else f"{len(report.problems)} problem(s), stopped at `{report.trace.stopped_at}`"
        )
    if tool == "torchinfo":
        import torchinfo

        try:
            torchinfo.summary(model, input_data=[x], verbose=0, device="cpu")
        except Exception as exc:  # torchinfo wraps the model's error in its own
            return f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
        return "ok"
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    return "ok"


def measure_one(model_name: str, tool: str) -> dict[str, Any]:
    model, x, spec = build(model_name)
    if tool == "check":  # import headfit's lazy parts before timing, as a long-running process would have
        import headfit.check  # noqa: F401
    peak_reset = _reset_peak()
    before = _rss_kib()
    start = time.perf_counter()
    outcome = run_tool(tool, model, x, spec)
    seconds = time.perf_counter() - start
    peak = _peak_kib(peak_reset)
    return {
        "model": model_name,
        "tool": tool,
        "seconds": seconds,
        "extra_mib": max(0, peak - before) / 1024,
        "outcome": outcome,
    }


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _rss_kib() -> int:
    return _status_kib("VmRSS")


def _peak_kib(reset: bool) -> int:
    if reset:
        return _status_kib("VmHWM")
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure_one(sys.argv[2], sys.argv[3])))
        return
    rows = []
    for model_name in MODELS:
        for tool in TOOLS:
            done = subprocess.run(
                [sys.executable, __file__, "--one", model_name, tool],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(_row(rows[-1]), flush=True)
    print()
    _print_targets({(r["model"], r["tool"]): r for r in rows})


def _row(r: dict[str, Any]) -> str:
    return f"{r['model']:9s} {r['tool']:10s} {r['seconds']:8.3f} s {r['extra_mib']:9.1f} MiB extra peak   {r['outcome']}"


def _print_targets(by: dict[tuple[str, str], dict[str, Any]]) -> None:
    for model_name in MODELS:
        check, info, forward = (by[(model_name, t)] for t in TOOLS)
        speed_fwd = forward["seconds"] / check["seconds"]
        speed_info = info["seconds"] / check["seconds"]
        memory = check["extra_mib"] / max(info["extra_mib"], 1e-9)
        print(
            f"{model_name}: check is {speed_fwd:.0f}x faster than the forward, {speed_info:.0f}x faster than "
            f"torchinfo, and uses {memory:.3f} of torchinfo's extra peak memory"
        )
    seed = {t: by[("seed", t)] for t in TOOLS}
    met = (
        seed["forward"]["seconds"] >= 20 * seed["check"]["seconds"]
        and seed["torchinfo"]["seconds"] >= 20 * seed["check"]["seconds"]
        and seed["check"]["extra_mib"] <= seed["torchinfo"]["extra_mib"] / 5
    )
    print(
        f"targets on the seed (>= 20x faster than both, <= 1/5 of torchinfo's memory): {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
