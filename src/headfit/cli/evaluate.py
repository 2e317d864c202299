"""``headfit evaluate CHECKPOINT --data DATA``: COCO box mAP of a checkpoint, with a per-class table."""

from __future__ import annotations

from pathlib import Path

import click

from headfit.cli.app import console, inference_options, json_flag, print_json, trust_code_option


@click.command("evaluate")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="COCO JSON, YOLO data.yaml, VOC folder or CSV.",
)
@click.option(
    "--images", type=click.Path(path_type=Path), help="Folder of the images, when not beside the data."
)
@click.option("--split", help="The split (YOLO / VOC; default: `val` where the data names one).")
@inference_options
@click.option(
    "--plots",
    type=click.Path(path_type=Path),
    help="Write PR curves and a grid of predictions into this folder.",
)
@trust_code_option()
@json_flag("Print one evaluation document.")
def command(checkpoint, data, images, split, batch, device, workers, plots, trust_code, as_json) -> None:
    """COCO box mAP of CHECKPOINT on DATA, with a per-class AP / AP50 table."""
    from headfit.evaluation.render import render_evaluation
    from headfit.evaluation.run import evaluate_checkpoint

    run, detections, dataset = evaluate_checkpoint(
        checkpoint,
        data,
        images=images,
        split=split,
        batch_size=batch,
        device=device,
        workers=workers,
        trust_code=trust_code,
    )
    if plots is not None:
        from headfit.evaluation.plots import draw_predictions_grid, plot_pr_curves

        run.notes.append(f"wrote `{plot_pr_curves(run.report, plots / 'pr_curves.png')}`")
        run.notes.append(f"wrote `{draw_predictions_grid(dataset, detections, plots / 'predictions.png')}`")
    if as_json:
        print_json(run.to_dict())
        return
    out = console()
    for part in render_evaluation(run):
        out.print(part, soft_wrap=isinstance(part, str))  # paths stay whole for copy and paste
