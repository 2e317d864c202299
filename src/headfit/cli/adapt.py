"""``headfit adapt MODEL --num-classes K [--weights PATH] -o OUT``: build, load, re-head, verify, save."""

from __future__ import annotations

from pathlib import Path

import click

from headfit.cli.app import console, json_flag, num_classes_option, print_json, trust_code_option


@click.command("adapt")
@click.argument("model")
@num_classes_option(
    required=True,
    help="Your K object classes, not counting the background: headfit adds the background class "
    "where the model counts one (a torchvision Faster R-CNN for 3 classes gets 4 outputs).",
)
@click.option(
    "--weights", type=click.Path(path_type=Path), help="Pretrained checkpoint (.pt/.pth/.bin/.safetensors)."
)
@click.option(
    "--partial-load",
    is_flag=True,
    help="Adapt even when the checkpoint leaves tensors outside the new head random (the report counts them).",
)
@click.option(
    "--keep-classes",
    metavar="a,b|@FILE",
    help="Pretrained classes (ids or names) to start the new rows from.",
)
@click.option("--class-names", metavar="a,b,c|@FILE", help="Names of your classes, stored in the sidecar.")
@click.option("--num-keypoints", type=int, metavar="N", help="Keypoints per object (Keypoint R-CNN).")
@click.option("--head", metavar="PATH", help="Module path of the layer to replace (your own models).")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "pt"]), help="Default: from OUT's suffix.")
@click.option("--ema", is_flag=True, help="Load the checkpoint's EMA weights.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the weights."
)
@trust_code_option()
@json_flag()
def command(
    model,
    num_classes,
    weights,
    partial_load,
    keep_classes,
    class_names,
    num_keypoints,
    head,
    fmt,
    ema,
    output,
    trust_code,
    as_json,
):
    """Re-head MODEL for K classes, keeping every pretrained weight that fits, and prove it works.

    MODEL may be a saved model (`X.safetensors`): it is rebuilt with its weights and re-headed again.
    """
    from headfit.adapt import raise_if_failed
    from headfit.classnames import read_name_list
    from headfit.render import render
    from headfit.saved import adapt_file

    run = adapt_file(
        model,
        num_classes,
        output,
        weights=weights,
        fmt=fmt,
        ema=ema,
        partial_load=partial_load,
        trust_code=trust_code,
        keep_classes=read_name_list(keep_classes) if keep_classes else None,
        class_names=read_name_list(class_names) if class_names else None,
        num_keypoints=num_keypoints,
        head=head,
    )
    if as_json:
        print_json(run.to_dict())
    else:
        console().print(render(run))
    raise_if_failed(run.report)
