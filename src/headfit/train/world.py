"""Who is training: this process's rank among ``world_size`` processes (1 without ``torchrun``), and
the few collectives the loop needs to keep the ranks in step.

The loop, the sampler and the run directory read only this, so data-parallel training (``torchrun``,
DDP) changes how a ``World`` is made, not the code that uses it: each rank draws its own slice of
one shared order of batches, only rank 0 writes files or prints progress, and every decision to
stop (a non-finite loss, an exception, ``--patience``, Ctrl-C) is gathered from every rank, so the
ranks stop together instead of one of them waiting forever in a collective. With one process each
collective is the identity and ``torch.distributed`` is never touched.

``torch.distributed`` is imported when a collective runs, not with this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from headfit.errors import HeadfitError

T = TypeVar("T")


class DistributedError(HeadfitError):
    """The processes of a ``torchrun`` run could not start or lost each other (exit 2)."""


@dataclass(frozen=True)
class StopNote:
    """Why a rank stopped, in a form that crosses processes (an exception may not unpickle)."""

    rank: int
    message: str
    exit_code: int
    diagnosis: Any = None  # the Diagnosis of a TrainingStopped, rendered by rank 0

    @classmethod
    def of(cls, rank: int, exc: BaseException) -> StopNote:
        code = exc.exit_code if isinstance(exc, HeadfitError) else 1
        message = str(exc) if isinstance(exc, HeadfitError) else f"{type(exc).__name__}: {exc}"
        return cls(rank, message, code, getattr(exc, "diagnosis", None))


class RankFailed(HeadfitError):
    """Another rank stopped; this one stops with it, saying which rank and why."""

    def __init__(self, note: StopNote) -> None:
        super().__init__(f"rank {note.rank} stopped, so every rank stopped: {note.message}")
        self.exit_code = note.exit_code
        self.note = note


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_gather(self, value: Any) -> list[Any]:
        """``value`` of every rank, in rank order (any picklable object)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        try:
            dist.all_gather_object(gathered, value)
        except RuntimeError as exc:  # gloo / nccl: a peer died or the timeout ran out
            raise lost_ranks(self, exc) from None
        return gathered

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        return self.all_gather(value if self.is_main else None)[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank."""
        return any(self.all_gather(bool(flag)))

    def share_buffers(self, module: Any) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank, in place: each rank's forward
        updates them from its own slice of the batch, so they drift apart between DDP's broadcasts."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        try:
            with torch.no_grad():
                for buffer in module.buffers():
                    dist.broadcast(buffer, src=0)
        except RuntimeError as exc:
            raise lost_ranks(self, exc) from None

    def everywhere(self, work: Callable[[], T]) -> list[T]:
        """``work()`` on every rank and the results of all ranks; when it raises on some rank, every
        rank raises (that rank its own exception, the others ``RankFailed`` naming it)."""
        try:
            mine, failure = work(), None
        except Exception as exc:
            mine, failure = None, exc
        if not self.distributed:
            if failure is not None:
                raise failure
            return [mine]
        gathered = self.all_gather((mine, None if failure is None else StopNote.of(self.rank, failure)))
        if failure is not None:
            raise failure
        notes = [note for _, note in gathered if note is not None]
        if notes:
            raise RankFailed(notes[0])
        return [result for result, _ in gathered]


def world_from_env() -> World:
    """The ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` that ``torchrun`` sets; a single process without them."""
    return World(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def lost_ranks(world: World, exc: BaseException) -> DistributedError:
    """The paragraph for a collective that failed: another rank died, hung or is unreachable."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:300]
    return DistributedError(
        f"rank {world.rank} of {world.world_size} lost the other processes of this torchrun run "
        f"({type(exc).__name__}: {first}): another rank died or stopped answering within --dist-timeout. "
        "torchrun's own report names the rank that failed first; fix that and start again, or resume "
        "with `headfit train --resume RUN` (the state saved last is kept)"
    )
