"""Re-head a pretrained detector for the data's classes, starting the rows of classes the checkpoint
already knows (a COCO ``person``) from their pretrained rows, and the others fresh.

``headfit.adapt`` takes ``keep_classes`` all or nothing: one pretrained row per new class. When only
some data classes have a namesake in the checkpoint, this module gets the mixed head from ``adapt``
alone, without knowing how a family lays out its rows: it re-heads three copies, one with fresh
rows, and two keeping the known classes' rows while the unknown classes borrow two different sets
of spare pretrained rows. An output row that is the same in the two borrowing copies came from a
known class (or the background), so it is kept; a row that differs belongs to an unknown class and
is taken from the fresh copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from headfit.errors import UsageError
from headfit.families.base import Family


@dataclass
class Reheaded:
    """What re-heading did, for the start-of-run summary."""

    replaced: list[str] = field(default_factory=list)
    kept: list[tuple[str, int, str]] = field(default_factory=list)  # (data class, pretrained row, its name)
    notes: list[str] = field(default_factory=list)


def matching_rows(
    names: list[str], source_names: list[str] | None, family: Family, source_outputs: int
) -> list[int | None]:
    """For each data class name, the pretrained row of the same name (None when there is none)."""
    from headfit import classnames

    if not source_names or len(source_names) != source_outputs:
        return [None] * len(names)
    rows: list[int | None] = []
    for name in names:
        if name.strip().lstrip("-").isdigit():  # a numeric class name would be read as a row id
            rows.append(None)
            continue
        try:
            rows.append(
                classnames.resolve_keep([name], source_names, source_outputs, family.counts_background)[0]
            )
        except UsageError:
            rows.append(None)
    return rows


def reheaded(
    model: nn.Module, names: list[str], rows: list[int | None], source_names: list[str] | None
) -> Reheaded:
    """Re-head ``model`` in place for ``len(names)`` classes; row ``rows[i]`` (if not None) of the
    pretrained head starts class ``i``."""
    from headfit.adapt import adapt_with_report

    k = len(names)
    known = [r for r in rows if r is not None]
    if not known:
        _, report = adapt_with_report(model, k, class_names=names, verify=False)
        return Reheaded(replaced=report.replaced, notes=report.notes)
    if len(known) == k:
        _, report = adapt_with_report(model, k, keep_classes=known, class_names=names, verify=False)
        return _with_kept(report, names, rows, source_names)
    return _mixed(model, names, rows, source_names)


def _mixed(
    model: nn.Module, names: list[str], rows: list[int | None], source_names: list[str] | None
) -> Reheaded:
    from headfit.adapt import adapt_with_report, source_head_outputs
    from headfit.families import family_for

    family = family_for(model)
    k, unknown = len(names), sum(r is None for r in rows)
    outputs = source_head_outputs(family, model) or 0
    first = int(family.counts_background)
    spare = [r for r in range(first, outputs) if r not in rows]
    if len(spare) < 2 * unknown:  # too small a pretrained head to tell the rows apart: all fresh
        _, report = adapt_with_report(model, k, class_names=names, verify=False)
        result = Reheaded(replaced=report.replaced, notes=report.notes)
        result.notes.append("every class starts from fresh rows: the pretrained head has too few rows to mix")
        return result

    def borrowing(spares: list[int]) -> list[int]:
        it = iter(spares)
        return [r if r is not None else next(it) for r in rows]

    fresh, other = copy.deepcopy(model), copy.deepcopy(model)
    adapt_with_report(fresh, k, class_names=names, verify=False)
    adapt_with_report(
        other, k, keep_classes=borrowing(spare[unknown : 2 * unknown]), class_names=names, verify=False
    )
    _, report = adapt_with_report(
        model, k, keep_classes=borrowing(spare[:unknown]), class_names=names, verify=False
    )
    for path in report.replaced:
        _take_differing_rows(model.get_submodule(path), other.get_submodule(path), fresh.get_submodule(path))
    return _with_kept(report, names, rows, source_names)


@torch.no_grad()
def _take_differing_rows(target: nn.Module, other: nn.Module, fresh: nn.Module) -> None:
    for name, tensor in target.named_parameters(recurse=False):
        theirs, new = getattr(other, name), getattr(fresh, name)
        differs = (tensor != theirs).reshape(tensor.shape[0], -1).any(dim=1)
        tensor[differs] = new[differs]


def _with_kept(report, names: list[str], rows: list[int | None], source_names: list[str] | None) -> Reheaded:
    kept = [
        (name, row, source_names[row] if source_names else str(row))
        for name, row in zip(names, rows, strict=True)
        if row is not None
    ]
    return Reheaded(replaced=report.replaced, kept=kept, notes=report.notes)
