"""``headfit demo``: the classic FCOS mistake, reproduced live, diagnosed, and fixed with ``adapt``.

Nothing here is canned: the model is built, the mistake is made, the forward pass raises the real
exception (on the meta device, so it takes a fraction of a second), and every diagnosis, check and
adaptation is computed on the spot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = "torchvision:fcos_resnet50_fpn"
IMAGES = "[3x1333x762]x2"
USER_CLASSES = 2
MISTAKE = "model.head.classification_head.cls_logits = nn.Conv2d(256, 2, kernel_size=3, padding=1)"


@dataclass
class DemoRun:
    """What the demo did, step by step, as data (``render.render`` lays it out)."""

    spec: str = SPEC
    mistake: str = MISTAKE
    images: str = IMAGES
    classes: int = USER_CLASSES
    error: str = ""
    seconds_to_error: float = 0.0
    diagnosis: Any = None  # Diagnosis from the message alone, as `headfit explain` gives it
    broken_check: Any = None  # CheckReport of the broken model
    adapt_run: Any = None  # AdaptRun of `headfit adapt ... --weights coco.pth`
    fixed_check: Any = None  # CheckReport of the rebuilt adapted model
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(
            self.diagnosis is not None
            and self.diagnosis.recognised
            and self.broken_check is not None
            and not self.broken_check.ok
            and self.fixed_check is not None
            and self.fixed_check.ok
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mistake": MISTAKE,
            "error": self.error,
            "seconds_to_error": round(self.seconds_to_error, 3),
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "broken_check": self.broken_check.to_dict() if self.broken_check else None,
            "adapt": self.adapt_run.to_dict() if self.adapt_run else None,
            "fixed_check": self.fixed_check.to_dict() if self.fixed_check else None,
            "files": self.files,
        }


def make_the_mistake() -> Any:
    """A COCO FCOS (91 classes) whose classification conv was replaced for 2 classes, nothing else."""
    import torch
    from torch import nn

    from headfit.spec import build_model

    model = build_model(SPEC, device="meta")
    with torch.device("meta"):
        model.head.classification_head.cls_logits = nn.Conv2d(256, USER_CLASSES, kernel_size=3, padding=1)
    return model.eval()


def reproduce_error(model: Any) -> tuple[BaseException, float]:
    """Run the broken model on two 1333x762 images (meta device) and return the exception it raises."""
    from headfit.inputs import InputSpec

    images = InputSpec.parse(IMAGES).make("meta")
    start = time.perf_counter()
    try:
        model(images)
    except Exception as exc:  # the user's error, which is what we want to see
        return exc, time.perf_counter() - start
    raise AssertionError("the broken FCOS ran without error: torchvision changed the head's view")


def save_coco_stand_in(path: Path) -> Path:
    """Stand in for a COCO-pretrained checkpoint: a freshly built 91-class FCOS's state_dict."""
    import torch

    from headfit.spec import build_model

    torch.manual_seed(0)
    torch.save(build_model(SPEC).state_dict(), path)
    return path


def run_demo(workdir: Path) -> DemoRun:
    from headfit.check import check
    from headfit.explain import explain
    from headfit.saved import adapt_file, rebuild

    run = DemoRun()
    broken = make_the_mistake()
    exc, run.seconds_to_error = reproduce_error(broken)
    run.error = f"{type(exc).__name__}: {exc}"
    run.diagnosis = explain(run.error)
    run.broken_check = check(broken, IMAGES, name=f"{SPEC} (cls_logits replaced, num_classes left)")

    weights = save_coco_stand_in(workdir / "coco.pth")
    output = workdir / "fcos2.safetensors"
    run.adapt_run = adapt_file(SPEC, USER_CLASSES, output, weights=weights)
    if run.adapt_run.output is not None:
        run.fixed_check = check(rebuild(output, device="meta"), IMAGES, name=str(output))
    run.files = {"checkpoint": str(weights), "adapted": str(output)}
    return run
