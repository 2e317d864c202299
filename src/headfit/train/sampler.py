"""Batches of images with similar aspect ratios, in an order fixed by (seed, epoch), resumable mid-epoch.

torchvision's detection reference (``references/detection/group_by_aspect_ratio.py``) groups images
into aspect-ratio bins so a padded batch wastes little, reading the sizes from the annotations (no
image is decoded to group). This sampler does the same, and adds what fault tolerance needs:

- the whole epoch's batches are a pure function of ``(seed, epoch)``, so a resumed run can skip the
  batches it already trained on and see exactly the batches it would have seen;
- every sample carries its own random seed, drawn with the order, so augmentation does not depend on
  which DataLoader worker decodes it, or on a restart;
- ``batch_size`` is the global batch: with ``world_size`` ranks every batch of the one shared order is
  cut into ``world_size`` equal slices and each rank takes its own, so the grouping holds per rank,
  every rank runs the same number of steps, and the images of a step are the same whatever the
  number of ranks (a run resumed on another world size continues with the batches it would have had).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

SEED_RANGE = 2**62


def aspect_ratio_groups(sizes: Sequence[tuple[int, int]], factor: int = 3) -> list[int]:
    """Group id per image from its ``(width, height)``: ``2 * factor + 2`` bins of ``width / height``
    spaced evenly in log2 between 1/2 and 2 (``factor=0`` gives two groups, portrait and landscape)."""
    if factor > 0:
        bins = [2 ** (-1 + 2 * i / (2 * factor)) for i in range(2 * factor + 1)]
    else:
        bins = [1.0]
    return [bisect.bisect_right(bins, w / h) for w, h in sizes]


class GroupedBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields lists of ``(index, sample_seed)``; every batch holds images of one aspect-ratio group.

    An epoch has ``ceil(N / batch_size)`` steps, each of ``batch_size / world_size`` images per rank:
    global batches fill group by group in a
    shuffled order, and the leftovers of each group are completed by repeating images of that group
    (as torchvision's ``GroupedBatchSampler`` does), so every batch has ``batch_size`` images and
    every image is seen once an epoch.
    """

    def __init__(
        self,
        group_ids: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not group_ids:
            raise ValueError("GroupedBatchSampler needs at least one image")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} does not split over {world_size} ranks")
        self.group_ids = list(group_ids)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0  # batches of this epoch already trained on (resume)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate over ``epoch``'s batches from batch ``start`` on (``start`` > 0 when resuming)."""
        self.epoch, self.start = epoch, start

    def batches_per_epoch(self) -> int:
        """The steps of a whole epoch (the same on every rank, and for any number of ranks)."""
        return math.ceil(len(self.group_ids) / self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        yield from self.epoch_batches(self.epoch)[self.start :]

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """This rank's batches of ``epoch``, each image paired with its augmentation seed."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.group_ids)
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        seeds = torch.randint(SEED_RANGE, (n,), generator=generator).tolist()
        share = self.batch_size // self.world_size
        mine = [batch[self.rank * share : (self.rank + 1) * share] for batch in self._grouped(order)]
        return [[(i, seeds[i]) for i in batch] for batch in mine]

    def _grouped(self, order: list[int]) -> list[list[int]]:
        wanted = self.batches_per_epoch()
        buffers: dict[int, list[int]] = {}
        members: dict[int, list[int]] = {}
        batches = []
        for i in order:
            group = self.group_ids[i]
            buffers.setdefault(group, []).append(i)
            members.setdefault(group, []).append(i)
            if len(buffers[group]) == self.batch_size:
                batches.append(buffers.pop(group))
        # the rest: largest partial buffers first, completed with repeats from their own group
        leftovers = sorted(buffers.items(), key=lambda item: -len(item[1]))
        for group, partial in leftovers:
            if len(batches) >= wanted:
                break
            pool = members[group]
            fill = [pool[k % len(pool)] for k in range(self.batch_size - len(partial))]
            batches.append(partial + fill)
        return batches
