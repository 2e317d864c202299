"""headfit train's training throughput against a bare torchvision-reference-style loop, in one run.

Same model (built from the same spec and re-headed the same way), same synthetic data, same batch,
same transforms (decode_image, flip, float, SanitizeBoundingBoxes; the model's multi-scale resize),
same DataLoader workers, same number of steps. The bare loop is ``references/detection/engine.py``'s
``train_one_epoch``: forward, sum of the losses, ``loss.item()`` and its finiteness check, backward,
SGD step, per-iteration warmup. headfit's side is the real ``Trainer`` (aspect-ratio batches with
per-sample seeds, AMP-ready step, gradient clipping, the progress display, the state-save clock);
its images/s counts the training epochs only, not the validation and checkpoints between them.

Rounds alternate which side runs first, so both see the same load on a shared machine; the target
is a median per-round ratio >= 0.95.

    python bench/train_vs_bare_loop.py [--model SPEC] [--images 64] [--size 160] [--batch 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from headfit.datasets import decode_image, synth
from headfit.train.prepare import TrainOptions, prepare
from headfit.train.progress import PlainDisplay


def headfit_round(data: Path, args: argparse.Namespace, out: Path) -> tuple[float, int, object]:
    options = TrainOptions(
        model=args.model, data=data, epochs=args.epochs, batch=args.batch, lr=args.lr, workers=args.workers,
        device="cpu", project=out, name="bench",
    )  # fmt: skip
    prepared = prepare(options)
    from rich.console import Console

    prepared.trainer.display = PlainDisplay(Console(file=open(os.devnull, "w")))  # noqa: SIM115 - the real display's work
    result = prepared.trainer.fit()
    return result.train_images_per_second, prepared.trainer.position.step, prepared


def bare_round(prepared, args: argparse.Namespace, steps: int) -> float:
    """The reference loop on the same model architecture, data and transforms."""
    from torch.utils.data import DataLoader
    from torchvision import tv_tensors

    from headfit.spec import build_model
    from headfit.train.detection import train_transform
    from headfit.train.heads import reheaded

    task = prepared.trainer.task
    setup = task.setup
    torch.manual_seed(0)
    model = build_model(args.model)
    reheaded(model, list(setup.train.classes.names), [None] * len(setup.train.classes), None)
    setup.family.set_image_size(model, task.train_size)  # the same multi-scale resize as headfit's epochs
    model.train()
    transform = train_transform(True, [])
    records, classes, offset = setup.train.images, setup.train.classes, int(setup.family.counts_background)

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return len(records)

        def __getitem__(self, i):
            r = records[i]
            image = decode_image(r.file)
            target = {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.as_tensor(r.boxes), format="XYXY", canvas_size=image.shape[-2:]
                ),
                "labels": torch.as_tensor(
                    [classes.index_of(c) + offset for c in r.category_ids], dtype=torch.int64
                ),
            }
            return transform(tv_tensors.Image(image), target)

    loader = DataLoader(
        Samples(), batch_size=args.batch, shuffle=True, drop_last=False, num_workers=args.workers,
        collate_fn=lambda batch: tuple(zip(*batch, strict=True)), persistent_workers=args.workers > 0,
    )  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1e-3, total_iters=min(1000, len(loader))
    )
    done, images, seconds = 0, 0, 0.0
    while done < steps:
        started = time.perf_counter()
        for batch_images, targets in loader:
            loss_dict = model(list(batch_images), list(targets))
            losses = sum(loss for loss in loss_dict.values())
            if not torch.isfinite(torch.tensor(losses.item())):
                raise SystemExit(f"bare loop: loss is {losses.item()}")
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
            warmup.step()
            done += 1
            images += len(batch_images)
            if done == steps:
                break
        seconds += time.perf_counter() - started
    return images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="headfit.train.tiny:tiny_fcos")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on shared cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="headfit-bench-") as tmp:
        data = Path(tmp) / "shapes"
        synth(data, images=args.images, classes=3, size=args.size)
        ours, bare = [], []
        for k in range(args.rounds):
            rate, steps, prepared = headfit_round(data, args, Path(tmp) / f"runs{k}")
            if k % 2:  # every other round the bare loop runs first: neither side always gets the warm caches
                bare.append(bare_round(prepared, args, steps))
                rate, steps, prepared = headfit_round(data, args, Path(tmp) / f"runs{k}b")
                ours.append(rate)
            else:
                ours.append(rate)
                bare.append(bare_round(prepared, args, steps))
            print(
                f"round {k + 1}: headfit {ours[-1]:.1f} images/s, bare loop {bare[-1]:.1f} images/s ({steps} steps each)"
            )
    ratios = [a / b for a, b in zip(ours, bare, strict=True)]
    print(
        f"{args.model}, {args.images} images of {args.size} px, batch {args.batch}, {args.workers} worker(s), "
        f"{args.threads} thread(s)"
    )
    print(f"headfit train : {statistics.median(ours):7.1f} images/s (median of {args.rounds})")
    print(f"bare loop     : {statistics.median(bare):7.1f} images/s")
    verdict = "meets" if statistics.median(ratios) >= 0.95 else "MISSES"
    print(
        f"ratio         : {statistics.median(ratios):.3f} (per round {', '.join(f'{r:.3f}' for r in ratios)}); {verdict} the >= 0.95 target"
    )


if __name__ == "__main__":
    main()
