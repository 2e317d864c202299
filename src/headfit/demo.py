"""``headfit demo``: the classic FCOS mistake, reproduced live, diagnosed, and fixed with ``adapt``.

Nothing here is canned: the model is built, the mistake is made, the forward pass raises the real
exception (on the meta device, so it takes a fraction of a second), and every diagnosis, check and
adaptation is computed on the spot.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = "torchvision:fcos_resnet50_fpn"
IMAGES = "[3x1333x762]x2"
USER_CLASSES = 2
MISTAKE = "model.head.classification_head.cls_logits = nn.Conv2d(256, 2, kernel_size=3, padding=1)"
# the happy ending: a short fine-tune. FCOS-ResNet50 takes ~15 s a step on a CPU, so the demo trains
# headfit's small FCOS (the same torchvision FCOS, behind a 5-stage conv net) on synthetic shapes
FINETUNE_SPEC = "headfit.train.tiny:tiny_fcos"
FINETUNE = {"images": 48, "classes": 2, "size": 160, "epochs": 5, "lr": 0.02}


@dataclass
class FinetuneRun:
    """``headfit train`` on a synthetic set: mAP per epoch (rendered by ``render.py``)."""

    spec: str
    train_images: int
    epochs: int
    steps: int
    seconds: float
    run: str
    rows: list[dict[str, float]] = field(default_factory=list)  # epoch, train_loss, val_AP50, val_AP

    @property
    def rising(self) -> bool:
        return len(self.rows) > 1 and self.rows[-1]["val_AP50"] > self.rows[0]["val_AP50"]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rising": self.rising}


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
    finetune: FinetuneRun | None = None  # `headfit train` of a small FCOS, mAP per epoch
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
            and self.finetune is not None
            and self.finetune.rising
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
            "finetune": self.finetune.to_dict() if self.finetune else None,
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

    from headfit.files import atomic_write
    from headfit.spec import build_model

    torch.manual_seed(0)
    state = build_model(SPEC).state_dict()
    atomic_write(path, lambda file: torch.save(state, file))
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
    run.finetune = finetune(workdir)
    run.files = {"checkpoint": str(weights), "adapted": str(output), "run": run.finetune.run}
    return run


def finetune(workdir: Path) -> FinetuneRun:
    """``headfit train headfit.train.tiny:tiny_fcos --data SHAPES`` on a fresh synthetic set."""
    from headfit.datasets import synth
    from headfit.train.prepare import TrainOptions, prepare
    from headfit.train.progress import NullDisplay

    data = workdir / "shapes"
    synth(data, images=FINETUNE["images"], classes=FINETUNE["classes"], size=FINETUNE["size"])
    options = TrainOptions(
        model=FINETUNE_SPEC,
        data=data,
        epochs=FINETUNE["epochs"],
        lr=FINETUNE["lr"],
        workers=0,
        device="cpu",
        project=workdir / "runs",
        name="tiny-fcos",
    )
    prepared = prepare(options)
    prepared.trainer.display = NullDisplay()
    with _one_thread():
        result = prepared.trainer.fit()
    rows = [
        {k: row[k] for k in ("epoch", "train_loss", "val_AP50", "val_AP")}
        for row in prepared.trainer.log.rows
    ]
    train = prepared.trainer.task.setup.train
    return FinetuneRun(
        spec=FINETUNE_SPEC,
        train_images=len(train.images),
        epochs=result.epochs_done,
        steps=prepared.trainer.position.step,
        seconds=result.seconds,
        run=str(result.run),
        rows=rows,
    )


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Small convs gain little from a second thread and lose most of their speed when the cores are
    shared (OpenMP threads spin-wait on each other), so the demo's training runs on one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
