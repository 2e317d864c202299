"""From ``headfit train``'s arguments to a ready ``Trainer``: every choice made once, with its reason.

In order: the device; the data (train and val, and how val was chosen); the model, refused in one
paragraph when it is no detector or needs what the data lacks (Mask R-CNN without masks); the data
check (problems stop the run, ``allow_drop`` leaves those images out and lists them); the weights
(loaded safely, refused when they belong to another architecture) and the re-heading for the data's
classes, keeping the pretrained rows of classes the checkpoint knows by name; the image size; the
pre-flight ``check`` at the data's real sizes and batch; the lr, scaled from the family's reference
recipe by the total batch; the run directory and ``args.json``. ``TrainPlan`` records each choice
and why, for the start-of-run summary. ``--resume`` rebuilds the same trainer from ``args.json``
and refuses data whose fingerprint changed.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from headfit.errors import HeadfitError, UsageError

DEFAULT_EPOCHS = 10
DEFAULT_BATCH = 4
VAL_FRACTION = 0.2
# what may change on resume: the data may move (its fingerprint must not change), the rest is the run's own
RESUMABLE = ("epochs", "lr", "device", "workers", "save_every", "patience", "amp", "data", "val")


class PreflightFailed(HeadfitError):
    """The data check or the model check found problems before the first step (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, details: list[Any]) -> None:
        super().__init__(message)
        self.details = details  # data Problems or check Problems, rendered by the CLI


@dataclass
class TrainOptions:
    """``headfit train``'s arguments (the CLI fills them; Python callers may too)."""

    model: str | None = None
    data: Path | None = None
    val: Path | None = None
    weights: Path | None = None
    epochs: int | None = None
    batch: int = DEFAULT_BATCH
    imgsz: int | None = None
    lr: float | None = None
    optimizer: str = "sgd"
    device: str = "auto"
    workers: int | None = None
    project: Path = Path("runs") / "train"
    name: str = "exp"
    resume: Path | None = None
    ema: bool = False
    freeze: tuple[str, ...] = ()
    amp: str = "auto"  # auto | bf16 | fp16 | off
    clip: float = 10.0
    patience: int | None = None
    save_every: float = 10.0  # minutes
    allow_drop: bool = False
    seed: int = 0
    flip: bool = True
    jitter: bool = True
    trust_code: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Paths made absolute, so ``--resume`` works from any folder."""
        document = asdict(self)
        return {
            k: (str(v.resolve()) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in document.items()
        }


@dataclass
class Choice:
    topic: str
    value: str
    why: str = ""


@dataclass
class TrainPlan:
    """What the run chose and why, the files it dropped, and the pre-flight results (rendered by the CLI)."""

    run: Path
    choices: list[Choice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[Any] = field(default_factory=list)  # data Problems of images left out (--allow-drop)
    load: Any = None  # LoadReport of --weights
    check: Any = None  # CheckReport of the pre-flight check
    resumed: str | None = None  # "epoch 3, batch 40" when resuming

    def add(self, topic: str, value: str, why: str = "") -> None:
        self.choices.append(Choice(topic, value, why))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "choices": [asdict(c) for c in self.choices],
            "notes": list(self.notes),
            "dropped": [p.to_dict() for p in self.dropped],
            "resumed": self.resumed,
        }


@dataclass
class Prepared:
    trainer: Any  # headfit.train.loop.Trainer
    plan: TrainPlan


# -- the whole preparation ---------------------------------------------------------------------------


def prepare(options: TrainOptions) -> Prepared:
    """Resolve ``options`` into a trainer for a new run, or raise a ``HeadfitError`` saying what is wrong."""
    _require(options)
    return _assemble(options, TrainPlan(run=Path()))


def prepare_resume(run: Path, overrides: dict[str, Any], *, trust_code: bool = False) -> Prepared:
    """The trainer of the run in ``run``, continued where its state was saved.

    ``overrides`` may change ``epochs`` (more epochs extend a finished run), ``lr``, ``device``,
    ``workers``, ``save_every``, ``patience`` and ``amp``; the data must have the fingerprint it had.
    """
    from headfit.train.rundir import read_args
    from headfit.train.state import STATE_FILE, load_state

    args = read_args(run)
    unknown = sorted(set(overrides) - set(RESUMABLE))
    if unknown:
        raise UsageError(
            f"--resume continues {run} with its own model, data and settings; "
            f"{', '.join('--' + k.replace('_', '-') for k in unknown)} cannot change on resume (it may change "
            f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)}). Start a new run to change the rest"
        )
    state_path = run / STATE_FILE
    if not state_path.is_file():
        raise UsageError(
            f"{run} has no {STATE_FILE}: the run stopped before its first save (at the first --save-every "
            "interval or the end of the first epoch), so there is nothing to resume; start it again"
        )
    state = load_state(state_path)
    saved = _options_from(args)
    options = replace(saved, **overrides, resume=run, trust_code=trust_code)
    _refuse_untrusted_resume(args["model"], run, trust_code)
    done = int(state["position"][0])
    options = replace(options, epochs=_resumed_epochs(overrides.get("epochs"), args, done, run))
    plan = TrainPlan(run=run, resumed=f"epoch {done + 1}, batch {int(state['position'][1])}")
    prepared = _assemble(options, plan, resume=(args, state))
    return prepared


def _options_from(args: dict[str, Any]) -> TrainOptions:
    saved = dict(args.get("options") or {})
    for name in ("data", "val", "weights", "project", "resume"):
        if saved.get(name) is not None:
            saved[name] = Path(saved[name])
    saved["freeze"] = tuple(saved.get("freeze") or ())
    known = set(TrainOptions.__dataclass_fields__)
    return TrainOptions(**{k: v for k, v in saved.items() if k in known})


def _resumed_epochs(epochs: int | None, args: dict[str, Any], done: int, run: Path) -> int:
    planned = int(args["epochs"])
    if epochs is None:
        if done >= planned:
            raise UsageError(
                f"{run} finished all {planned} of its epochs; give `--epochs N` with N > {planned} to train "
                f"it further (`headfit train --resume {run} --epochs {planned + 10}`)"
            )
        return planned
    if epochs <= done:
        raise UsageError(f"--epochs {epochs}: {run} has already trained {done} epochs; give more than {done}")
    return epochs


def _refuse_untrusted_resume(spec: str, run: Path, trust_code: bool) -> None:
    from headfit.checkpoint import TRUSTED_SOURCES

    source, _, name = spec.rpartition(":")
    if trust_code or source in TRUSTED_SOURCES or source.startswith("headfit."):  # headfit's own builders
        return
    raise UsageError(
        f"{run}/args.json says the model is built by `{spec}`: resuming would import `{source}` and call "
        f"`{name}`, which runs code from outside headfit. If you trust that code, pass `--trust-code`"
    )


def _assemble(options: TrainOptions, plan: TrainPlan, resume: tuple[dict, dict] | None = None) -> Prepared:
    import torch

    from headfit.train.world import world_from_env

    world = world_from_env()
    torch.manual_seed(options.seed)
    device = _device(options.device)
    train, val, how = read_data(options.data, options.val)
    if resume is None:
        model, spec, source_names = _build(options)
    else:
        model, spec, source_names = _rebuild(resume[0]["model"], options.trust_code), resume[0]["model"], None
    family = _training_family(model, spec, options.model)
    masks = _needed_targets(family, model, spec, train)
    train, val = _checked_data(train, val, options.allow_drop, plan)
    if resume is not None:
        _same_data(resume[0], train, val, options)
    _describe_data(plan, train, val, how)
    if resume is None:
        source_names = _load_weights(model, family, options, spec, source_names, plan)
    _rehead(model, family, train, source_names, plan, spec)
    size, image_size = _image_size(model, family, options.imgsz, plan)
    _set_detections(model, family, val, plan)
    plan.check = _preflight_check(model, train, options.batch, spec)
    _freeze(model, family, options.freeze, plan)
    config = _loop_config(options, family, model, device, world, len(train.images), plan)
    if resume is None:
        plan.run = _new_run(options, world)
    trainer = _trainer(
        model, family, spec, train, val, options, config, size, image_size, masks, device, world, plan
    )
    if resume is not None:
        trainer.load_state_dict(resume[1])
    _write_args(plan.run, options, spec, train, val, config, world, plan, image_size, masks, resume)
    return Prepared(trainer, plan)


def _rebuild(spec: str, trust_code: bool) -> Any:
    from headfit.spec import build_model

    return build_model(spec).train()


def _same_data(args: dict[str, Any], train: Any, val: Any, options: TrainOptions) -> None:
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
            f"the {name} data changed since {options.resume} started: it trained on {before.get('images', '?')} "
            f"images / {before.get('boxes', '?')} boxes from {before.get('source', '?')} (fingerprint "
            f"{was.get(name)}), and {split.source} now holds {len(split.images)} images / {split.num_annotations} "
            f"boxes (fingerprint {now}). Resuming on other data would not continue the same run: restore the "
            "data, or start a new run (with `--weights RUN/last.safetensors` to start from its weights)"
        )


def _require(options: TrainOptions) -> None:
    if not options.model:
        raise UsageError(
            "give the MODEL to train, e.g. `headfit train torchvision:fasterrcnn_resnet50_fpn --data DATA`"
        )
    if options.data is None:
        raise UsageError(
            f"give the training data with `--data`, e.g. `headfit train {options.model} --data train.json`"
        )
    for name in ("batch", "epochs", "imgsz"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    if options.lr is not None and not (options.lr > 0 and math.isfinite(options.lr)):
        raise UsageError(f"--lr must be a positive number, got {options.lr}")
    if options.optimizer not in ("sgd", "adamw"):
        raise UsageError(f"--optimizer {options.optimizer!r}: choose sgd or adamw")
    if options.save_every < 0:
        raise UsageError(f"--save-every is in minutes and cannot be negative, got {options.save_every}")


def _device(device: str) -> str:
    from headfit.evaluation.inference import resolve_device

    return resolve_device(device)


# -- data ----------------------------------------------------------------------------------------------


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


def _checked_data(train: Any, val: Any, allow_drop: bool, plan: TrainPlan) -> tuple[Any, Any]:
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


def _describe_data(plan: TrainPlan, train: Any, val: Any, how: str) -> None:
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


# -- model ---------------------------------------------------------------------------------------------


def _build(options: TrainOptions) -> tuple[Any, str, list[str] | None]:
    """The model as the spec builds it (its pretrained head size), its spec for the checkpoints, and
    the names of its current head's classes when known (a headfit checkpoint knows them)."""
    from headfit.checkpoint import load_detector
    from headfit.spec import build_model

    spec = options.model
    if _is_checkpoint(spec):
        loaded = load_detector(spec, trust_code=options.trust_code)
        return loaded.model.train(), loaded.spec, list(loaded.classes.names)
    return build_model(spec).train(), _portable(spec), None


def _portable(spec: str) -> str:
    """A ``file.py:CALLABLE`` spec with the file's absolute path, so a resume works from any folder."""
    source, sep, name = spec.rpartition(":")
    if sep and source.endswith(".py") and Path(source).is_file():
        return f"{Path(source).resolve()}:{name}"
    return spec


def _is_checkpoint(spec: str) -> bool:
    from headfit.adapt import is_adapted_weights

    return is_adapted_weights(spec)


def _training_family(model: Any, spec: str, given: str) -> Any:
    from headfit.families import family_for

    family = family_for(model)
    if family.task != "detection":
        raise UsageError(
            f"`{given}` builds a `{type(model).__name__}` ({family.name} family), which is not an object "
            "detector, and `headfit train` trains detectors on detection data (boxes). Give a torchvision "
            "detector such as `torchvision:fasterrcnn_mobilenet_v3_large_fpn`, `torchvision:fcos_resnet50_fpn`"
            " or `torchvision:retinanet_resnet50_fpn_v2`, or your own `file.py:CALLABLE` that returns one"
        )
    return family


def _needed_targets(family: Any, model: Any, spec: str, train: Any) -> bool:
    """True when the model trains on instance masks (and the data has them); refuses keypoints and
    masks the data does not have, naming the model that needs neither."""
    needs = family.target_needs(model)
    if "keypoints" in needs:
        raise UsageError(
            f"`{spec}` is a Keypoint R-CNN, which trains on keypoints, and headfit's datasets carry boxes "
            f"only. To detect the same objects by their boxes, train `{needs['keypoints']}` (the same "
            "backbone and box head, without the keypoint head)"
        )
    if "masks" not in needs:
        return False
    with_masks = sum(1 for r in train.images if r.segmentations and any(r.segmentations))
    if not with_masks:
        raise UsageError(
            f"`{spec}` is a Mask R-CNN, which trains a mask for every box, but {train.source} has no "
            "instance masks (COCO `segmentation` polygons or RLE) on any of its "
            f"{train.num_annotations} boxes. Train `{needs['masks']}` instead: the same backbone, RPN and "
            "box head without the mask head, so it detects the same boxes; or add COCO segmentations "
            "to the data"
        )
    return True


def _load_weights(
    model: Any, family: Any, options: TrainOptions, spec: str, names: list[str] | None, plan: TrainPlan
) -> list[str] | None:
    """Load ``--weights`` safely; the pretrained head's class names when its rows were loaded."""
    from headfit import classnames
    from headfit.adapt import source_head_outputs
    from headfit.weights import load_weights

    if options.weights is None:
        plan.add(
            "weights",
            "none",
            "--weights not given: the builder's random init (headfit never downloads)"
            if names is None
            else f"from {spec}",
        )
        return names
    report = load_weights(model, options.weights)
    plan.load = report
    _refuse_foreign(report, options.weights, spec, model)
    head_layers = [h.path for h in family.heads(model)]
    head_loaded = (
        all(any(k.startswith(p + ".") for k in report.loaded) for p in head_layers) if head_layers else False
    )
    plan.add(
        "weights",
        f"{options.weights}: {len(report.loaded)} tensors loaded",
        f"{len(report.skipped)} skipped (shape), {len(report.missing)} missing",
    )
    if not head_loaded:
        plan.notes.append(
            "the checkpoint's class head did not fit the model, so every class starts from fresh rows"
        )
        return None
    outputs = source_head_outputs(family, model)
    return names or (classnames.source_categories(outputs, spec) if outputs else None)


def _refuse_foreign(report: Any, weights: Path, spec: str, model: Any) -> None:
    """A checkpoint of another architecture: most model tensors missing, or most of its own unused."""
    ours = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    loaded = [k for k in report.loaded if not k.endswith("num_batches_tracked")]
    theirs = len(report.loaded) + len(report.skipped) + len(report.unexpected)
    if len(loaded) >= 0.5 * len(ours) and len(report.unexpected) <= 0.5 * theirs:
        return
    example = report.unexpected[0] if report.unexpected else (report.missing[0] if report.missing else "-")
    raise UsageError(
        f"--weights {str(weights)!r} fits only {len(loaded)} of the {len(ours)} tensors of `{spec}`, and "
        f"{len(report.unexpected)} of its {theirs} tensors have names the model lacks (e.g. `{example}`): it "
        f"was saved from another architecture. Give a checkpoint of `{spec}` itself (or train MODEL as the "
        "architecture the checkpoint was saved from)"
    )


def _rehead(
    model: Any, family: Any, train: Any, source_names: list[str] | None, plan: TrainPlan, spec: str
) -> None:
    from headfit.adapt import source_head_outputs
    from headfit.train.heads import matching_rows, reheaded

    names = list(train.classes.names)
    outputs = source_head_outputs(family, model) or 0
    rows = matching_rows(names, source_names, family, outputs)
    done = reheaded(model, names, rows, source_names)
    offset = "labels 1.. (0 is the background)" if family.counts_background else "labels 0.."
    plan.add(
        "head",
        f"re-headed for {len(names)} classes with `adapt` ({family.name}, {offset})",
        "; ".join(done.notes[:1]),
    )
    if done.kept:
        kept = ", ".join(f"`{name}` from pretrained row {row} ({source})" for name, row, source in done.kept)
        plan.add(
            "kept rows",
            kept,
            "these data classes have a namesake in the checkpoint's head; the others start fresh",
        )


def _image_size(model: Any, family: Any, imgsz: int | None, plan: TrainPlan) -> tuple[Any, int | None]:
    from headfit.families.base import ImageSize

    current = family.image_size(model)
    if current is None:
        raise UsageError(
            f"`{type(model).__name__}` has no resize transform headfit can set; give a torchvision-style detector"
        )
    if imgsz is None:
        plan.add("size", str(current), "the builder's own size (--imgsz S trains and validates at S)")
        return current, None
    size = (
        ImageSize.square(imgsz)
        if current.fixed is None
        else ImageSize(min_size=(imgsz,), max_size=imgsz, fixed=(imgsz, imgsz))
    )
    family.set_image_size(model, size)
    plan.add("size", str(family.image_size(model)), f"--imgsz {imgsz} (the builder's default: {current})")
    return family.image_size(model), imgsz


def _set_detections(model: Any, family: Any, val: Any, plan: TrainPlan) -> None:
    from headfit.evaluation import detections_per_image_for

    wanted = detections_per_image_for(val)
    current = family.detections_per_image(model)
    if current is not None and wanted > current:
        family.set_detections_per_image(model, wanted)
        plan.notes.append(
            f"detections per image raised from {current} to {wanted}: a val image holds more than 100 boxes"
        )


def _preflight_check(model: Any, train: Any, batch: int, spec: str) -> Any:
    """``headfit check`` on the meta device at the real sizes of the ``batch`` largest training images."""
    from headfit.check import check
    from headfit.inputs import InputSpec

    sized = [r for r in train.images if r.width and r.height]
    largest = sorted(sized, key=lambda r: -(r.width * r.height))[: max(1, batch)]
    shapes = [(3, r.height, r.width) for r in largest]
    report = check(model, InputSpec.images(*shapes), name=spec)
    if not report.ok:
        raise PreflightFailed(
            f"`headfit check` of the re-headed `{spec}` at the data's sizes found {len(report.problems)} "
            "problem(s), listed above; the first step would fail",
            list(report.problems),
        )
    return report


def _freeze(model: Any, family: Any, parts: tuple[str, ...], plan: TrainPlan) -> None:
    known = family.freezable(model)
    for part in parts:
        if part not in known:
            raise UsageError(
                f"--freeze {part!r}: this model's parts are {', '.join(f'`{k}`' for k in known) or 'none'}"
            )
        module = model.get_submodule(known[part])
        count = sum(p.numel() for p in module.parameters())
        module.requires_grad_(False)
        plan.add("frozen", f"`{known[part]}` ({count:,} parameters)", f"--freeze {part}")


# -- the loop ------------------------------------------------------------------------------------------


def _loop_config(
    options: TrainOptions, family: Any, model: Any, device: str, world: Any, images: int, plan: TrainPlan
) -> Any:
    from headfit.train.loop import LoopConfig
    from headfit.train.schedule import scaled_lr

    total = options.batch * world.world_size
    if options.lr is not None:
        lr, why = options.lr, "--lr"
    else:
        recipe = family.training_recipe(model)
        if recipe is None:
            raise UsageError(f"headfit knows no reference lr for `{type(model).__name__}`: give --lr")
        choice = scaled_lr(recipe.lr, recipe.batch, total, options.optimizer)
        lr, why = choice.lr, f"{recipe.source}: {choice.why}"
    amp = _amp(options.amp, device)
    epochs = options.epochs or DEFAULT_EPOCHS
    steps = max(1, math.ceil(images / options.batch) // world.world_size)
    plan.add(
        "batch",
        f"{options.batch} x {world.world_size} process(es) = {total}",
        f"{steps} steps per epoch, batches grouped by aspect ratio",
    )
    plan.add("lr", f"{lr:.4g}", why)
    optimizer = "AdamW" if options.optimizer == "adamw" else "SGD momentum 0.9"
    plan.add(
        "optimizer",
        f"{optimizer}, weight decay 1e-4",
        f"warmup {min(1000, steps)} steps, then cosine to 1% over {epochs} epochs",
    )
    plan.add("clip", f"gradient norm <= {options.clip:g}" if options.clip else "off")
    plan.add(
        "amp",
        amp or "off",
        "CUDA autocast" if amp else ("no CUDA" if not device.startswith("cuda") else "--amp off"),
    )
    plan.add("device", device, _device_why(options.device, device))
    return LoopConfig(
        epochs=epochs,
        lr=lr,
        optimizer=options.optimizer,
        clip_norm=options.clip or None,
        amp=amp,
        ema=options.ema,
        save_every_s=options.save_every * 60,
        patience=options.patience,
        device=device,
        total_batch=total,
    )


def _device_why(asked: str, device: str) -> str:
    import torch

    if asked != "auto":
        return f"--device {asked}"
    if device.startswith("cuda"):
        return f"--device auto: {torch.cuda.get_device_name(torch.device(device))}"
    return "--device auto: no CUDA device"


def _amp(amp: str, device: str) -> str | None:
    import torch

    cuda = device.startswith("cuda")
    if amp == "off":
        return None
    if amp == "auto":
        if not cuda:
            return None
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fp16" and not cuda:
        raise UsageError(
            "--amp fp16 needs CUDA (float16 autocast with a GradScaler); on the CPU use --amp bf16 or off"
        )
    return amp


def _workers(workers: int | None) -> int:
    if workers is not None:
        if workers < 0:
            raise UsageError(f"--workers must be 0 or more, got {workers}")
        return workers
    return min(4, max(0, (os.cpu_count() or 1) - 1))


def _new_run(options: TrainOptions, world: Any) -> Path:
    from headfit.train.rundir import new_run_dir

    return new_run_dir(options.project, options.name) if world.is_main else options.project / options.name


def _trainer(
    model, family, spec, train, val, options, config, size, image_size, masks, device, world, plan
) -> Any:
    from headfit.train.detection import DetectionSetup, DetectionTask
    from headfit.train.loop import Trainer
    from headfit.train.progress import make_display

    model.to(device)
    setup = DetectionSetup(
        spec=spec,
        family=family,
        train=train,
        val=val,
        batch_size=options.batch,
        size=size,
        image_size=image_size,
        device=device,
        workers=_workers(options.workers),
        seed=options.seed,
        flip=options.flip,
        jitter=options.jitter,
        masks=masks,
    )
    task = DetectionTask(model, setup, world)
    plan.add(
        "augment",
        ("flip, " if options.flip else "")
        + (_jitter_text(task, size) if options.jitter else "no scale jitter"),
        "transforms.v2 + SanitizeBoundingBoxes",
    )
    plan.add("run", str(plan.run), "never an existing folder")
    return Trainer(task, model, config, plan.run, world=world, display=make_display(is_main=world.is_main))


def _jitter_text(task: Any, size: Any) -> str:
    sizes = task.train_size.min_size
    if task.train_size != size:
        return f"scale jitter {min(sizes)}..{max(sizes)} px (shorter side, 0.75-1.25x)"
    return "scale jitter in the data (zoom out up to 1.33x)"


def _write_args(run, options, spec, train, val, config, world, plan, image_size, masks, resume=None) -> None:
    from headfit import __version__
    from headfit.datasets import fingerprint
    from headfit.train.rundir import write_args

    if not world.is_main:
        return
    history = list(resume[0].get("resumed", [])) + [plan.resumed] if resume is not None else []
    write_args(
        run,
        {
            "headfit_version": __version__,
            "command": resume[0].get("command") if resume is not None else ["headfit", *sys.argv[1:]],
            "model": spec,
            "options": options.to_dict(),
            "epochs": config.epochs,
            "lr": config.lr,
            "batch": options.batch,
            "world_size": world.world_size,
            "total_batch": config.total_batch,
            "device": config.device,
            "amp": config.amp,
            "image_size": image_size,
            "masks": masks,
            "classes": train.classes.to_dict(),
            "data_fingerprint": {"train": fingerprint(train), "val": fingerprint(val)},
            "data_summary": {
                "train": {
                    "source": str(train.source),
                    "images": len(train.images),
                    "boxes": train.num_annotations,
                },
                "val": {"source": str(val.source), "images": len(val.images), "boxes": val.num_annotations},
            },
            "dropped": [{"image_id": p.image_id, "code": p.code, "summary": p.summary} for p in plan.dropped],
            "choices": [asdict(c) for c in plan.choices],
            "resumed": history,
        },
    )
