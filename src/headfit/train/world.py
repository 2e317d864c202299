"""Who is training: this process's rank among ``world_size`` processes (1 without ``torchrun``).

The loop, the sampler and the run directory read only this, so data-parallel training (``torchrun``,
DDP) changes how a ``World`` is made, not the code that uses it: each rank draws its own batches
from one shared order, and only rank 0 writes files or prints progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and prints."""
        return self.rank == 0


def world_from_env() -> World:
    """The ``RANK`` / ``WORLD_SIZE`` that ``torchrun`` sets; a single process without them."""
    return World(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)))
