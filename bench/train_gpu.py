"""`headfit train` on GPUs: Faster R-CNN (ResNet-50 FPN) at 800 px, with and without AMP, on 1 GPU
and on all of them (torchrun); images/s and peak memory per GPU.

    python bench/train_gpu.py [--steps 300] [--batch 4] [--workers 4]

`--batch` is per GPU. Each measurement builds the run through `headfit.train.prepare` (the same
trainer `headfit train` uses, on a synthetic `headfit data synth` set of 800 px images, random
weights: nothing is downloaded), skips `--warmup` steps, then times `--steps` optimizer steps.
With more than one GPU the script starts itself under `torch.distributed.run` for the all-GPU rows.
On a machine without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MODEL = "torchvision:fasterrcnn_resnet50_fpn"
SIZE = 800


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4, help="images per step and GPU")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--data", type=Path, help="(internal) the synthetic set, shared by the ranks")
    parser.add_argument("--json", type=Path, help="(internal) where rank 0 writes its rows")
    return parser.parse_args()


def synthetic(folder: Path) -> Path:
    from headfit.datasets import synth

    synth(folder, images=128, classes=3, size=SIZE, seed=0)
    return folder


def measure(data: Path, amp: str, args: argparse.Namespace, world_size: int, project: Path) -> dict:
    """images/s over ``args.steps`` steps after ``args.warmup``, and this GPU's peak memory."""
    from headfit.train.prepare import TrainOptions, prepare

    batch = args.batch * world_size
    options = TrainOptions(
        model=MODEL, data=data, imgsz=SIZE, batch=batch, amp=amp, device="cuda", workers=args.workers,
        project=project, epochs=10_000, save_every=1e9, lr=0.01,
    )  # fmt: skip
    trainer = prepare(options).trainer
    torch.cuda.reset_peak_memory_stats()
    done, started = 0, None
    for epoch in range(trainer.config.epochs):
        trainer.forward.train()
        for step_batch in trainer.task.batches(epoch, 0):
            if done == args.warmup:
                torch.cuda.synchronize()
                started = time.perf_counter()
            trainer._step(step_batch)
            done += 1
            if done == args.warmup + args.steps:
                torch.cuda.synchronize()
                seconds = time.perf_counter() - started
                return {
                    "gpus": world_size,
                    "amp": amp,
                    "images_per_s": args.steps * batch / seconds,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                }
    raise RuntimeError("ran out of batches")


def rows_here(data: Path, args: argparse.Namespace, world_size: int) -> list[dict]:
    amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    with tempfile.TemporaryDirectory() as project:
        return [measure(data, mode, args, world_size, Path(project)) for mode in ("off", amp)]


def all_gpus(data: Path, args: argparse.Namespace, count: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(count),
            __file__, "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
            "--workers", str(args.workers), "--data", str(data), "--json", str(out),
        ]  # fmt: skip
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def main() -> int:
    args = arguments()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (this bench needs at least one GPU)")
        return 0
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if args.json is not None:  # a rank of the all-GPU run
        rows = rows_here(args.data, args, world_size)
        if int(os.environ.get("RANK", 0)) == 0:
            args.json.write_text(json.dumps(rows))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        data = synthetic(Path(folder) / "data")
        rows = rows_here(data, args, 1)
        count = torch.cuda.device_count()
        if count > 1:
            rows += all_gpus(data, args, count)
    print(f"{MODEL} at {SIZE} px, batch {args.batch} per GPU, {args.steps} steps after {args.warmup}, "
          f"{torch.cuda.get_device_name(0)}")  # fmt: skip
    print(f"{'GPUs':>4}  {'amp':>4}  {'images/s':>9}  {'peak GiB per GPU':>16}")
    for row in rows:
        print(f"{row['gpus']:>4}  {row['amp']:>4}  {row['images_per_s']:>9.1f}  {row['peak_gib']:>16.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
