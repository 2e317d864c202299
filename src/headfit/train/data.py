"""The data of a run: train and val (and how val was chosen), checked by ``data check`` first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from headfit.errors import UsageError
from headfit.train.plan import PreflightFailed, TrainPlan

VAL_FRACTION = 0.2


def read_data(data: Path, val: Path | None, val_fraction: float = VAL_FRACTION) -> tuple[Any, Any, str]:
    """(train, val, how val was chosen): ``--val``, the data's own splits, or a split by image id."""
    from headfit.datasets import read, split_by_id, splits

    if val is not None:
        train = read(data, split=_own_split(data, ("train",)))
        held_out = read(val, split=_own_split(val, ("val", "valid", "validation", "test")))
        _same_classes(train, held_out, f"--val {val}")
        return train, held_out, f"--val {val}"
    names = splits(data)
    val_name = next((n for n in ("val", "valid", "validation") if n in names), None)
    if "train" in names and val_name is not None:
        train, held_out = read(data, split="train"), read(data, split=val_name)
        _same_classes(train, held_out, f"its `{val_name}` split")
        return train, held_out, f"the data's own `train` and `{val_name}` splits"
    whole = read(data, split="train" if "train" in names else None)
    train, held_out = split_by_id(whole, val_fraction)
    return (
        train,
        held_out,
        f"no --val: {len(held_out.images)} of {len(whole.images)} images held out by image id ({val_fraction:.0%}, deterministic)",
    )


def _own_split(path: Path, wanted: tuple[str, ...]) -> str | None:
    from headfit.datasets import splits

    names = splits(path)
    return next((n for n in wanted if n in names), None)


def _same_classes(train: Any, val: Any, where: str) -> None:
    if train.classes.to_dict() != val.classes.to_dict():
        raise UsageError(
            f"the validation data ({where}) has the classes {', '.join(val.classes.names)} but the training "
            f"data has {', '.join(train.classes.names)}: both must use the same categories with the same ids"
        )


def checked_data(train: Any, val: Any, allow_drop: bool, plan: TrainPlan) -> tuple[Any, Any]:
    """``data check`` on both splits: problems stop the run, unless ``allow_drop`` leaves their images out."""
    found = [(train, p) for p in _problems(train)] + [(val, p) for p in _problems(val)]
    if found and not allow_drop:
        raise PreflightFailed(
            f"`data check` found {len(found)} problem(s) in the data, listed above; fix them "
            f"(`headfit data check {train.source} --fix CLEAN.json` writes a cleaned copy) or pass "
            "--allow-drop to train without those images",
            [p for _, p in found],
        )
    undroppable = [p for _, p in found if p.image_id is None]
    if undroppable:
        raise PreflightFailed(
            f"`data check` found {len(undroppable)} problem(s) that are not about one image (listed above), so "
            "--allow-drop cannot leave them out; fix the data",
            undroppable,
        )
    plan.dropped = [p for _, p in found]
    train, val = (
        _without(train, {p.image_id for d, p in found if d is train}),
        _without(val, {p.image_id for d, p in found if d is val}),
    )
    for split in (train, val):
        if not split.images:
            raise UsageError(
                f"no usable image is left in the {split.split or 'training'} data ({split.source})"
                + (f" after leaving out the {len(plan.dropped)} with problems" if plan.dropped else "")
                + ": give a dataset with images whose files exist and decode"
            )
    return train, val


def _problems(dataset: Any) -> list[Any]:
    from headfit.datasets.lint import lint

    return list(lint(dataset).problems)


def _without(dataset: Any, image_ids: set[Any]) -> Any:
    if not image_ids:
        return dataset
    return replace(dataset, images=[r for r in dataset.images if r.image_id not in image_ids])


def describe_data(plan: TrainPlan, train: Any, val: Any, how: str) -> None:
    classes = train.classes
    named = ", ".join(f"{n} (id {i})" for i, n in zip(classes.ids[:8], classes.names[:8], strict=True))
    more = f" and {len(classes) - 8} more" if len(classes) > 8 else ""
    plan.add("classes", f"{len(classes)}: {named}{more}", f"from {train.source}")
    plan.add(
        "data",
        f"train {len(train.images)} images / {train.num_annotations} boxes, val {len(val.images)} images / "
        f"{val.num_annotations} boxes",
        how,
    )
    if plan.dropped:
        plan.notes.append(f"left out {len(plan.dropped)} image(s) with data problems (--allow-drop)")


def same_data(args: dict[str, Any], train: Any, val: Any, run: Path | None) -> None:
    """Refuse to resume on data that is not what the run trained on, saying what changed."""
    from headfit.datasets import fingerprint

    was = args.get("data_fingerprint") or {}
    summary = args.get("data_summary") or {}
    for name, split in (("train", train), ("val", val)):
        now = fingerprint(split)
        if was.get(name) == now:
            continue
        before = summary.get(name, {})
        raise UsageError(
            f"the {name} data changed since {run} started: it trained on {before.get('images', '?')} "
            f"images / {before.get('boxes', '?')} boxes from {before.get('source', '?')} (fingerprint "
            f"{was.get(name)}), and {split.source} now holds {len(split.images)} images / {split.num_annotations} "
            f"boxes (fingerprint {now}). Resuming on other data would not continue the same run: restore the "
            "data, or start a new run (with `--weights RUN/last.safetensors` to start from its weights)"
        )


def evaluation_data(train: Any, val: Any, run: Path, write: bool) -> str:
    """The ``--data`` (and ``--split``) that make ``headfit evaluate`` score the run's own val images.

    A val split that is a file or split of its own is named as it is; val images held out of the
    training data by image id have no file, so they are written to ``RUN/val.json`` (COCO, file names
    relative to it; ``write`` on the rank that writes the run).
    """
    import shlex

    from headfit.datasets import splits
    from headfit.datasets.fix import write_coco

    source = Path(val.source)
    if val.split and val.split in splits(source):
        return shlex.quote(str(source)) + ("" if val.split == "val" else f" --split {shlex.quote(val.split)}")
    if source != Path(train.source):
        return shlex.quote(str(source))
    held_out = run / "val.json"
    if write:
        write_coco(val, held_out)
    return shlex.quote(str(held_out))
