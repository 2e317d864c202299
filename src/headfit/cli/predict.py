"""``headfit predict CHECKPOINT SOURCE...``: detections on images, drawn and as COCO results."""

from __future__ import annotations

from pathlib import Path

import click

from headfit.cli.app import console, inference_options, json_flag, print_json, trust_code_option
from headfit.evaluation.run import PREDICT_CONF


@click.command("predict")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output folder (default: a new runs/predict/expN)."
)
@click.option(
    "--conf",
    type=float,
    default=PREDICT_CONF,
    show_default=True,
    help="Keep detections scoring at least this.",
)
@inference_options
@trust_code_option()
@json_flag("Print the COCO result records as one JSON list.")
def command(checkpoint, sources, out, conf, batch, device, workers, trust_code, as_json) -> None:
    """Run CHECKPOINT on images or folders; write annotated images and predictions.json."""
    from headfit.evaluation.render import render_prediction
    from headfit.evaluation.run import predict_files

    run = predict_files(
        checkpoint,
        sources,
        out=out,
        conf=conf,
        batch_size=batch,
        device=device,
        workers=workers,
        trust_code=trust_code,
    )
    if as_json:
        print_json(run.records)
        return
    terminal = console()
    for part in render_prediction(run):
        terminal.print(part, soft_wrap=isinstance(part, str))  # paths stay whole for copy and paste
