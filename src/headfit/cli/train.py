"""``headfit train MODEL --data DATA`` / ``headfit train --resume RUN``: fine-tune a detector into a run."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from headfit.cli.app import console, json_flag, print_json, trust_code_option
from headfit.train.distributed import DEFAULT_TIMEOUT_S


@click.command("train")
@click.argument("model", required=False)
@click.option(
    "--data", type=click.Path(path_type=Path), help="COCO .json, YOLO data.yaml, VOC folder or CSV."
)
@click.option(
    "--val", type=click.Path(path_type=Path), help="Validation data (default: the data's own split)."
)
@click.option("--weights", type=click.Path(path_type=Path), help="Pretrained checkpoint, loaded safely.")
@click.option(
    "--partial-load",
    is_flag=True,
    help="Train even when --weights leaves tensors outside the class head random (the plan counts them).",
)
@click.option("--epochs", type=int, help="Epochs to train (default 10; with --resume: the new total).")
@click.option(
    "--batch", type=int, default=4, show_default=True, help="Images per step, over all processes (torchrun)."
)
@click.option("--imgsz", type=int, help="Train and validate at this size (the longer side).")
@click.option("--lr", type=float, help="Peak lr (default: the family's reference, scaled by the batch).")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=int, help="DataLoader workers decoding images (default: cores - 1, <= 4).")
@click.option("--project", type=click.Path(path_type=Path), default=Path("runs/train"), show_default=True)
@click.option("--name", default="exp", show_default=True, help="Run folder name (exp, exp2, ... if taken).")
@click.option("--resume", type=click.Path(path_type=Path), metavar="RUN", help="Continue the run in RUN.")
@click.option("--ema", is_flag=True, help="Keep an EMA of the weights; validate and save it.")
@click.option("--freeze", multiple=True, metavar="PART", help="Freeze a part, e.g. `backbone`.")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto", show_default=True)
@click.option("--clip", type=float, default=10.0, show_default=True, help="Max gradient norm (0: off).")
@click.option("--patience", type=int, help="Stop after N epochs without a better val_AP.")
@click.option("--save-every", type=float, default=10.0, show_default=True, help="Minutes between saves.")
@click.option("--allow-drop", is_flag=True, help="Leave out images with data problems (and list them).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-flip", "flip", is_flag=True, flag_value=False, default=True, help="No horizontal flip.")
@click.option("--no-jitter", "jitter", is_flag=True, flag_value=False, default=True, help="No scale jitter.")
@trust_code_option()
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    help="Train on N processes of this machine (one per GPU): starts torchrun itself.",
)
@click.option("--sync-bn", is_flag=True, help="SyncBatchNorm over the processes (torchrun, CUDA).")
@click.option(
    "--dist-timeout",
    type=float,
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds a process waits for the others (torchrun) before the run stops.",
)
@json_flag("Print one JSON document at the end (progress goes to stderr).")
@click.pass_context
def command(
    ctx: click.Context,
    model: str | None,
    resume: Path | None,
    trust_code: bool,
    as_json: bool,
    devices: int | None,
    **given,
) -> None:
    """Fine-tune MODEL on DATA: classes from the data, pre-flight checks, a readable run directory."""
    if devices is not None:
        _start_torchrun(devices, given["device"])
    from headfit.train.prepare import TrainOptions, prepare
    from headfit.train.resume import prepare_resume
    from headfit.train.session import run_training
    from headfit.train.world import world_from_env

    given["freeze"] = tuple(given["freeze"])
    if resume is not None:
        if model is not None:
            raise click.UsageError("--resume takes the model from RUN/args.json; drop MODEL")
        explicit = {
            k: v for k, v in given.items() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE
        }
        prepared = lambda: prepare_resume(resume, explicit, trust_code=trust_code)  # noqa: E731
    else:
        options = TrainOptions(model=model, trust_code=trust_code, **given)
        prepared = lambda: prepare(options)  # noqa: E731
    world = world_from_env()
    if not world.distributed:
        run_training(prepared, console(), as_json=as_json, print_json=print_json)
        return
    import atexit

    from headfit.train.distributed import finish

    atexit.register(finish)  # after rank 0 has printed its error: the other ranks wait for it
    out, rank_json = _rank_output(world)
    _as_rank(world, lambda: run_training(prepared, out, as_json=as_json, print_json=rank_json))


def _as_rank(world, work) -> None:
    """Run ``work`` on this rank of a torchrun run. The ranks stop together, and each raises its
    error: rank 0 prints it (naming another rank when that one stopped first); the others exit with
    the same code in silence, except when they lost the other processes (only they can say so)."""
    from headfit.errors import HeadfitError
    from headfit.train.world import DistributedError

    try:
        work()
    except HeadfitError as exc:
        if world.is_main or isinstance(exc, DistributedError):
            raise
        raise SystemExit(exc.exit_code) from None


def _rank_output(world):  # -> (console, print_json)
    """Rank 0's console and JSON; the other ranks print nothing."""
    if world.is_main:
        return console(), print_json
    return type(console())(quiet=True), lambda document: None


def _start_torchrun(devices: int, device: str) -> None:
    """``--devices N``: this command again under torchrun on N processes (N = 1: in this process)."""
    import os
    import sys

    from headfit.errors import UsageError
    from headfit.train.distributed import launch

    if "WORLD_SIZE" in os.environ:
        raise UsageError(
            "--devices starts torchrun itself, and this process already runs under torchrun "
            f"(WORLD_SIZE={os.environ['WORLD_SIZE']}): drop --devices and give torchrun --nproc_per_node"
        )
    if devices == 1:
        return
    argv = sys.argv[sys.argv.index("train") + 1 :] if "train" in sys.argv else []
    raise SystemExit(launch(devices, argv, device))

