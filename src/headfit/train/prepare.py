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

Under ``torchrun`` every rank runs this same preparation (``train/distributed.py``): the launch is
checked before the rendezvous, every rank must hold data of the same fingerprint, rank 0 alone makes
the run directory (the others learn its name from rank 0), and the model is wrapped in DDP.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from headfit.errors import UsageError
from headfit.train.data import checked_data, describe_data, read_data, same_data
from headfit.train.distributed import DEFAULT_TIMEOUT_S
from headfit.train.plan import PreflightFailed, TrainPlan

DEFAULT_EPOCHS = 10
DEFAULT_BATCH = 4


@dataclass
class TrainOptions:
    """``headfit train``'s arguments (the CLI fills them; Python callers may too)."""

    model: str | None = None
    data: Path | None = None
    val: Path | None = None
    weights: Path | None = None
    partial_load: bool = False  # --weights may leave tensors outside the head random
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
    sync_bn: bool = False  # SyncBatchNorm over the ranks (CUDA)
    dist_timeout: float = DEFAULT_TIMEOUT_S  # seconds a rank waits for the others (torchrun)

    def to_dict(self) -> dict[str, Any]:
        """Paths made absolute, so ``--resume`` works from any folder."""
        document = asdict(self)
        return {
            k: (str(v.resolve()) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in document.items()
        }


@dataclass
class Prepared:
    trainer: Any  # headfit.train.loop.Trainer
    plan: TrainPlan


# -- the whole preparation ---------------------------------------------------------------------------


def prepare(options: TrainOptions) -> Prepared:
    """Resolve ``options`` into a trainer for a new run, or raise a ``HeadfitError`` saying what is wrong."""
    _require(options)
    return assemble(options, TrainPlan(run=Path()))


def assemble(options: TrainOptions, plan: TrainPlan, resume: tuple[dict, dict] | None = None) -> Prepared:
    import torch

    from headfit.train import distributed
    from headfit.train.world import world_from_env

    world = world_from_env()
    torch.manual_seed(options.seed)
    device = _device(options.device)
    distributed.check_world(world, device, options.batch, options.resume)
    device = distributed.rank_device(world, device)
    distributed.start(world, device, options.dist_timeout)
    train, val, how = read_data(options.data, options.val)
    if resume is None:
        model, spec, source_names = _build(options)
    else:
        spec, source_names = resume[0]["model"], None
        model = _rebuild(spec)
    family = _training_family(model, spec, options.model)
    masks = _needed_targets(family, model, spec, train)
    train, val = checked_data(train, val, options.allow_drop, plan)
    _same_data_everywhere(world, train, val)
    if resume is not None:
        same_data(resume[0], train, val, options.resume)
    describe_data(plan, train, val, how)
    if resume is None:
        source_names = _load_weights(model, family, options, spec, source_names, plan)
    replaced = _rehead(model, family, train, source_names, plan, spec)
    if plan.load is not None:
        _partial_load(plan.load, replaced, spec, options.partial_load, plan)
    size, image_size = _image_size(model, family, options.imgsz, plan)
    _set_detections(model, family, val, plan)
    plan.check = _preflight_check(model, train, options.batch // world.world_size, spec)
    _sync_batchnorm(model, options, device, world, plan)
    _freeze(model, family, options.freeze, plan)
    config = _loop_config(options, family, model, device, world, len(train.images), plan)
    if resume is None:
        plan.run = _new_run(options, world)
    plan.evaluate = _evaluate_command(plan.run, spec, train, val, world)
    trainer = _trainer(
        model, family, spec, train, val, options, config, size, image_size, masks, device, world, plan
    )
    if resume is not None:
        trainer.load_state_dict(resume[1])
        _rescaled_note(resume[0], options.batch, world, plan)
    _write_args(plan.run, options, spec, train, val, config, world, plan, image_size, masks, resume)
    return Prepared(trainer, plan)


def _same_data_everywhere(world: Any, train: Any, val: Any) -> None:
    from headfit.datasets import fingerprint
    from headfit.train.distributed import same_fingerprints

    if world.distributed:
        prints = {"train": fingerprint(train), "val": fingerprint(val)}
        same_fingerprints(world, prints, {"train": str(train.source), "val": str(val.source)})


def _rescaled_note(args: dict[str, Any], batch: int, world: Any, plan: TrainPlan) -> None:
    """A run resumed on another number of processes keeps its total batch, split anew."""
    was = int(args.get("world_size", 1))
    if was == world.world_size:
        return
    plan.notes.append(
        f"resumed on {world.world_size} process(es); the run trained on {was}: the total batch stays {batch}, "
        f"now {batch // world.world_size} per process (was {batch // was}), so the lr, the steps per epoch "
        "and the order of the images are those of the run"
    )


def _rebuild(spec: str) -> Any:
    """The architecture of a run being resumed: its spec as built (``state.pt`` has the weights)."""
    from headfit.spec import build_model

    return build_model(spec).train()


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
    if not options.dist_timeout > 0:
        raise UsageError(f"--dist-timeout is in seconds and must be positive, got {options.dist_timeout}")
    if options.save_every < 0:
        raise UsageError(f"--save-every is in minutes and cannot be negative, got {options.save_every}")


def _device(device: str) -> str:
    from headfit.evaluation.inference import resolve_device

    return resolve_device(device)


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
    from headfit.saved import is_adapted_weights

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
            "--weights not given: the builder's random init; headfit never downloads"
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


def _partial_load(report: Any, replaced: list[str], spec: str, partial_load: bool, plan: TrainPlan) -> None:
    """``adapt``'s rule: ``--weights`` must fill every tensor outside the re-headed layers, unless
    ``--partial-load`` (then the plan says how many stayed random)."""
    from headfit.saved import refuse_partial_load

    random = refuse_partial_load(report, replaced, spec, partial_load)
    if random:
        plan.notes.append(
            f"--partial-load: {len(random)} tensors outside the new head are not from the checkpoint and "
            f"keep the builder's random init, e.g. `{random[0]}`"
        )


def _rehead(
    model: Any, family: Any, train: Any, source_names: list[str] | None, plan: TrainPlan, spec: str
) -> list[str]:
    """Re-head ``model`` for the data's classes; the module paths of the layers replaced."""
    from headfit.adapt import source_head_outputs
    from headfit.train.heads import matching_rows, reheaded

    names = list(train.classes.names)
    outputs = source_head_outputs(family, model) or 0
    rows = matching_rows(names, source_names, family, outputs)
    done = reheaded(model, names, rows, source_names)
    k = len(names)
    labels = (
        f"labels 1..{k}, 0 is the background"
        if family.counts_background
        else f"labels 0..{k - 1}, no background"
    )
    plan.add(
        "head",
        f"re-headed for {k} class{'es' * (k != 1)} with `adapt`: {', '.join(f'`{p}`' for p in done.replaced)}",
        f"{family.name}: {labels}",
    )
    if done.kept:
        kept = ", ".join(f"`{name}` from pretrained row {row} ({source})" for name, row, source in done.kept)
        plan.add(
            "kept rows",
            kept,
            "these data classes have a namesake in the checkpoint's head; the others start fresh",
        )
    return list(done.replaced)


def _image_size(model: Any, family: Any, imgsz: int | None, plan: TrainPlan) -> tuple[Any, int | None]:
    from headfit.families.base import ImageSize

    current = family.image_size(model)
    if current is None:
        raise UsageError(
            f"`{type(model).__name__}` has no resize transform headfit can set; give a torchvision-style detector"
        )
    if imgsz is None:
        plan.add("size", str(current), "the builder's own; --imgsz S trains and validates at S")
        return current, None
    size = (
        ImageSize.square(imgsz)
        if current.fixed is None
        else ImageSize(min_size=(imgsz,), max_size=imgsz, fixed=(imgsz, imgsz))
    )
    family.set_image_size(model, size)
    plan.add("size", str(family.image_size(model)), f"--imgsz {imgsz}; the builder's default: {current}")
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
        norms = _freeze_statistics(module)
        kept = f"; {norms} BatchNorm layer(s) keep their running statistics" if norms else ""
        plan.add("frozen", f"`{known[part]}` ({count:,} parameters{kept})", f"--freeze {part}")


class _FrozenStatistics:
    """Mixed into a frozen BatchNorm: ``train()`` leaves it in eval mode, so its running mean and
    variance stay the pretrained ones (``requires_grad_(False)`` alone still updates them)."""

    def train(self, mode: bool = True) -> Any:
        return super().train(False)  # type: ignore[misc]


_FROZEN_CLASSES: dict[type, type] = {}


def _freeze_statistics(module: Any) -> int:
    """Put every BatchNorm under ``module`` in eval mode for good; how many."""
    from torch import nn

    count = 0
    for norm in module.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm) and not isinstance(norm, _FrozenStatistics):
            cls = type(norm)
            if cls not in _FROZEN_CLASSES:
                _FROZEN_CLASSES[cls] = type(f"Frozen{cls.__name__}", (_FrozenStatistics, cls), {})
            norm.__class__ = _FROZEN_CLASSES[cls]
            norm.eval()
            count += 1
    return count


# -- the loop ------------------------------------------------------------------------------------------


def _loop_config(
    options: TrainOptions, family: Any, model: Any, device: str, world: Any, images: int, plan: TrainPlan
) -> Any:
    from headfit.train.loop import LoopConfig
    from headfit.train.schedule import scaled_lr

    total = options.batch
    if options.lr is not None:
        lr, why = options.lr, "--lr"
    else:
        recipe = family.training_recipe(model)
        if recipe is None:
            raise UsageError(f"headfit knows no reference lr for `{type(model).__name__}`: give --lr")
        choice = scaled_lr(recipe.lr, recipe.batch, total, options.optimizer)
        lr, why = choice.lr, f"{choice.why}; {recipe.source}"
    amp = _amp(options.amp, device)
    epochs = options.epochs or DEFAULT_EPOCHS
    steps = math.ceil(images / total)
    split = f" = {world.world_size} processes x {total // world.world_size}" if world.distributed else ""
    plan.add("batch", f"{total}{split}", f"{steps} steps per epoch, batches grouped by aspect ratio")
    plan.add("lr", f"{lr:.4g}", why)
    optimizer = "AdamW" if options.optimizer == "adamw" else "SGD momentum 0.9"
    plan.add(
        "optimizer",
        f"{optimizer}, weight decay 1e-4",
        f"warmup {min(1000, steps)} steps, then cosine to 1% over {epochs} epoch{'s' * (epochs != 1)}",
    )
    plan.add("clip", f"gradient norm <= {options.clip:g}" if options.clip else "off")
    plan.add(
        "amp",
        amp or "off",
        "CUDA autocast" if amp else ("no CUDA" if not device.startswith("cuda") else "--amp off"),
    )
    plan.add("device", device, _device_why(options.device, device))
    if world.distributed:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        plan.add(
            "processes",
            f"{world.world_size} (torchrun, DistributedDataParallel over {backend})",
            f"rank 0 writes the run directory; a rank that stops answering for {options.dist_timeout:g} s "
            "ends the run (--dist-timeout)",
        )
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
    """Rank 0 makes the run directory; every rank gets its path (or rank 0's error)."""
    from headfit.train.rundir import new_run_dir

    return world.everywhere(lambda: new_run_dir(options.project, options.name) if world.is_main else None)[0]


def _evaluate_command(run: Path, spec: str, train: Any, val: Any, world: Any) -> str:
    """``headfit evaluate`` of the run's best checkpoint on its val data, ready to paste."""
    import shlex

    from headfit.spec import names_a_library_builder
    from headfit.train.data import evaluation_data

    data = evaluation_data(train, val, run, write=world.is_main)
    trust = "" if names_a_library_builder(spec) else " --trust-code"
    return f"headfit evaluate {shlex.quote(str(run / 'best.safetensors'))} --data {data}{trust}"


def _sync_batchnorm(model: Any, options: TrainOptions, device: str, world: Any, plan: TrainPlan) -> None:
    from headfit.train.distributed import sync_batchnorm

    if not options.sync_bn:
        return
    if not world.distributed:
        raise UsageError("--sync-bn synchronises BatchNorm over the processes of a torchrun run; with one "
                         "process there is nothing to synchronise: drop it (or start with torchrun / --devices N)")
    count = sync_batchnorm(model, device)
    plan.add("sync-bn", f"{count} BatchNorm layer(s) made SyncBatchNorm", "--sync-bn: statistics over the total batch")


def _trainer(
    model, family, spec, train, val, options, config, size, image_size, masks, device, world, plan
) -> Any:
    from headfit.train.detection import DetectionSetup, DetectionTask
    from headfit.train.loop import Trainer
    from headfit.train.progress import make_display

    model.to(device)
    parallel = _parallel(model, family, device, world)
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
    display = make_display(is_main=world.is_main)
    return Trainer(task, model, config, plan.run, world=world, display=display, parallel=parallel)


def _parallel(model: Any, family: Any, device: str, world: Any) -> Any:
    """``model`` in DDP under torchrun (the family says whether some parameters go unused), else None."""
    from headfit.train.distributed import wrap

    return wrap(model, device, family.ddp_find_unused_parameters(model)) if world.distributed else None


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
            "batch_per_process": options.batch // world.world_size,
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
