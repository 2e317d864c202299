"""Data-parallel training under ``torchrun``: the process group, the checks before it, DDP itself.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in the environment; ``start`` joins them
through ``env://`` with the backend the device needs (nccl on CUDA, gloo on the CPU) and a bounded
timeout, so a rank that never arrives or dies later ends the others with one paragraph instead of a
hang. Before any of that, what would fail on every rank is refused at once: more processes on a node
than it has GPUs, a batch the ranks cannot split evenly, ``--sync-bn`` where it cannot run.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from headfit.errors import UsageError
from headfit.train.world import DistributedError, World

DEFAULT_TIMEOUT_S = 300.0  # --dist-timeout: how long a rank waits for the others in any collective


def check_world(world: World, device: str, batch: int, resuming: Any = None) -> None:
    """Refuse a launch that cannot work, before the rendezvous (the same answer on every rank);
    ``resuming`` is the run being resumed, whose batch cannot change."""
    if not world.distributed:
        return
    if batch % world.world_size and resuming is not None:
        counts = ", ".join(str(n) for n in range(1, batch + 1) if batch % n == 0)
        raise UsageError(
            f"{resuming} trains with a total batch of {batch}, which {world.world_size} processes cannot split "
            f"evenly, and a resumed run keeps its batch: resume it on a number of processes that divides "
            f"{batch} ({counts})"
        )
    if batch % world.world_size:
        per = batch / world.world_size
        lower = batch - batch % world.world_size
        raise UsageError(
            f"--batch {batch} is the total batch of one step over all {world.world_size} processes, and "
            f"{world.world_size} processes cannot split it evenly ({per:g} images each). Pass a multiple of "
            f"{world.world_size}: `--batch {lower or world.world_size}` or `--batch {lower + world.world_size}`"
            f" ({(lower or world.world_size) // world.world_size} or {lower // world.world_size + 1} per process)"
        )
    if device.startswith("cuda"):
        import torch

        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world.world_size))
        count = torch.cuda.device_count()
        if per_node > count:
            asked = f"torchrun started {per_node} processes on this node (--nproc_per_node {per_node})"
            raise UsageError(too_many_processes(asked, count))


def too_many_processes(asked: str, gpus: int) -> str:
    return (
        f"{asked}, but this machine has {gpus} CUDA GPU{'s' * (gpus != 1)}: each process trains on a GPU "
        "of its own. Pass "
        f"`--nproc_per_node {gpus}` (or `--devices {gpus}`), or train on the CPU with `--device cpu`"
    )


def rank_device(world: World, device: str) -> str:
    """Each rank's own GPU (``cuda:LOCAL_RANK``) under torchrun; the device as given otherwise."""
    if not (world.distributed and device.startswith("cuda")):
        return device
    import torch

    torch.cuda.set_device(world.local_rank)
    return f"cuda:{world.local_rank}"


def start(world: World, device: str, timeout_s: float) -> None:
    """Join the other ranks (``env://``); a rendezvous that does not complete within ``timeout_s``
    ends with one paragraph, exit 2."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    try:
        dist.init_process_group(
            backend, init_method="env://", rank=world.rank, world_size=world.world_size,
            timeout=timedelta(seconds=timeout_s),
        )  # fmt: skip
    except (RuntimeError, ValueError) as exc:
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DistributedError(
            f"rank {world.rank} of {world.world_size} could not join the others at {where} within "
            f"{timeout_s:g} s ({type(exc).__name__}: {first}). Every process of the run must start with "
            "the same --nnodes, --nproc_per_node and --rdzv-endpoint (or MASTER_ADDR/MASTER_PORT), and "
            "reach that address; raise --dist-timeout when nodes start far apart"
        ) from None


def finish() -> None:
    """At exit: wait for the other ranks (bounded by the group's timeout), then leave the group.
    A rank that stopped in silence must not exit before rank 0 has printed why: torchrun ends every
    rank as soon as one exits with an error."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except RuntimeError:  # a rank that is gone already; nothing left to wait for
        pass
    dist.destroy_process_group()


def sync_batchnorm(model: Any, device: str) -> int:
    """Make every ``BatchNorm`` of ``model`` a ``SyncBatchNorm`` (statistics over the global batch,
    not each rank's slice of it), in place; how many. torchvision's pretrained backbones use
    ``FrozenBatchNorm2d``, which has no statistics to synchronise and stays as it is."""
    import torch
    from torch import nn

    if not device.startswith("cuda"):
        raise UsageError(
            "--sync-bn needs CUDA: torch's SyncBatchNorm runs on GPUs only. On the CPU each process "
            "normalises over its own images; drop --sync-bn (or give each process a larger batch)"
        )
    count = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # a detector's root is no BatchNorm: in place
    return count


def wrap(model: Any, device: str, find_unused: bool) -> Any:
    """``model`` in ``DistributedDataParallel`` (gradients averaged over the ranks at each step)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def same_fingerprints(world: World, prints: dict[str, str], sources: dict[str, str]) -> None:
    """Every rank must read the same data (several nodes may hold several copies): refuse naming
    the ranks whose fingerprint differs from rank 0's."""
    gathered = world.all_gather((prints, sources))
    first, where = gathered[0]
    other = [rank for rank, (p, _) in enumerate(gathered) if p != first]
    if not other:
        return
    split = next(k for k in first if gathered[other[0]][0].get(k) != first[k])
    shown = "; ".join(
        f"rank {r}: {gathered[r][1][split]} ({gathered[r][0][split]})" for r in [0, *other[:3]]
    )
    raise UsageError(
        f"the ranks of this run read different {split} data: {shown}. Every rank must train on the same "
        "images and annotations: give every node the same copy (the same files, the same paths)"
    )


def torchrun_command(devices: int, argv: list[str]) -> list[str]:
    """``python -m torch.distributed.run`` for ``devices`` processes on this machine, running
    ``headfit train`` with ``argv`` (headfit's command line after ``train``) less ``--devices``."""
    import sys

    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            rest.append(arg)
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(devices),
        "-m", "headfit", "train", *rest,
    ]  # fmt: skip


def launch(devices: int, argv: list[str], device: str) -> int:
    """Run ``headfit train`` on ``devices`` processes through torchrun; its exit code. More
    processes than GPUs is refused here, before any process starts."""
    import signal
    import subprocess

    import torch

    if device != "cpu" and torch.cuda.is_available() and devices > torch.cuda.device_count():
        asked = f"--devices {devices} asks for {devices} training processes"
        raise UsageError(too_many_processes(asked, torch.cuda.device_count()))
    process = subprocess.Popen(torchrun_command(devices, argv))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches torchrun and its ranks
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
