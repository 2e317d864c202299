"""Small models built from torchvision's classes, for tests that run real inference on the CPU.

``tiny_fcos`` is torchvision's FCOS over a 4-layer conv body behind an FPN (about 0.2M parameters), at
64 px: a forward on a batch of tiny images takes milliseconds. As a MODEL spec it is
``tests/tiny_models.py:tiny_fcos`` (user code: loading its checkpoints needs ``trust_code``).
``tiny_classifier`` is a classifier, for the refusals of detector-only commands.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

SPEC = f"{Path(__file__).resolve()}:tiny_fcos"
CLASSIFIER_SPEC = f"{Path(__file__).resolve()}:tiny_classifier"


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


def tiny_fcos(num_classes: int = 91, size: int = 64) -> FCOS:
    torch.manual_seed(0)
    body = nn.Sequential(OrderedDict(c1=_stage(3, 8), c2=_stage(8, 16), c3=_stage(16, 24), c4=_stage(24, 32)))
    backbone = BackboneWithFPN(
        body,
        return_layers={"c3": "0", "c4": "1"},
        in_channels_list=[24, 32],
        out_channels=32,  # the head's GroupNorm(32, C) needs a multiple of 32
        extra_blocks=LastLevelP6P7(32, 32),
    )
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,)), aspect_ratios=((1.0,),) * 4)
    return FCOS(backbone, num_classes, min_size=size, max_size=size, anchor_generator=anchors)


def tiny_classifier(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread: these models are too small to gain from more, and on a busy machine
    (parallel test workers) two threads per process wait on each other, 20x slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def trained_checkpoint(
    folder: Path, *, steps: int = 60, size: int = 64, images: int = 40
) -> tuple[Path, Path]:
    """A synthetic set (``headfit data synth``) and ``tiny_fcos`` trained on it for a few SGD steps,
    saved with ``save_detector``: ``(checkpoint, val.json)``. About two seconds on a CPU."""
    with one_thread():
        return _trained_checkpoint(folder, steps, size, images)


def _trained_checkpoint(folder: Path, steps: int, size: int, images: int) -> tuple[Path, Path]:
    from headfit import adapt
    from headfit.checkpoint import save_detector
    from headfit.datasets import decode_image, read, synth

    train_json, val_json = synth(folder / "data", images=images, classes=3, size=size)
    train = read(train_json)
    model = adapt(tiny_fcos(size=size), len(train.classes), verify=False).train()
    samples = [
        (
            decode_image(r.file).float() / 255,
            {
                "boxes": torch.as_tensor(r.boxes),
                "labels": torch.as_tensor(
                    [train.classes.index_of(c) for c in r.category_ids.tolist()], dtype=torch.int64
                ),
            },
        )
        for r in train.images
    ]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = [samples[i] for i in torch.randint(len(samples), (8,), generator=order).tolist()]
        losses = model([image for image, _ in batch], [target for _, target in batch])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
    checkpoint = folder / "tiny.safetensors"
    save_detector(model.eval(), checkpoint, spec=SPEC, classes=train.classes, image_size=size)
    return checkpoint, val_json
