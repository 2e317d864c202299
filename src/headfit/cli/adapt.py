"""``headfit adapt MODEL --num-classes K [--weights PATH] -o OUT``: build, load, re-head, verify, save."""

from __future__ import annotations

from pathlib import Path

import click

from headfit.cli.app import console, json_flag, print_json


@click.command("adapt")
@click.argument("spec", metavar="MODEL")
@click.option("--num-classes", "-k", type=int, required=True, help="Your object classes (no background).")
@click.option(
    "--weights", type=click.Path(path_type=Path), help="Pretrained checkpoint (.pt/.pth/.bin/.safetensors)."
)
@click.option(
    "--keep-classes", metavar="a,b|@FILE", help="Pretrained classes (ids or names) to start rows from."
)
@click.option("--class-names", metavar="a,b,c|@FILE", help="Names of your classes, stored in the sidecar.")
@click.option("--num-keypoints", type=int, help="Keypoints per object (Keypoint R-CNN).")
@click.option("--head", metavar="PATH", help="Module path of the layer to replace (your own models).")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "pt"]), help="Default: from OUT's suffix.")
@click.option("--ema", is_flag=True, help="Load the checkpoint's EMA weights.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the weights."
)
@json_flag()
def command(
    spec, num_classes, weights, keep_classes, class_names, num_keypoints, head, fmt, ema, output, as_json
):
    """Re-head MODEL for K classes, keeping every pretrained weight that fits, and prove it works."""
    from headfit.adapt import adapt_file, raise_if_failed, render_run
    from headfit.classnames import read_name_list

    run = adapt_file(
        spec,
        num_classes,
        output,
        weights=weights,
        fmt=fmt,
        ema=ema,
        keep_classes=read_name_list(keep_classes) if keep_classes else None,
        class_names=read_name_list(class_names) if class_names else None,
        num_keypoints=num_keypoints,
        head=head,
    )
    if as_json:
        print_json(run.to_dict())
    else:
        out = console()
        for part in render_run(run):
            out.print(part)
    raise_if_failed(run.report)
