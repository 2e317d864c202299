"""``headfit check MODEL``: head lint + meta-device shape trace; a module table, then each problem."""

from __future__ import annotations

import click

from headfit.cli.app import (
    console,
    input_option,
    json_flag,
    num_classes_option,
    print_json,
    trust_code_option,
)


@click.command("check")
@click.argument("model")
@input_option()
@num_classes_option()
@click.option("--depth", type=click.IntRange(min=0), metavar="N", help="Show modules at most N levels deep.")
@trust_code_option()
@json_flag("Print one check document.")
def command(
    model: str,
    inputs: tuple[str, ...],
    num_classes: int | None,
    depth: int | None,
    trust_code: bool,
    as_json: bool,
) -> None:
    """Lint MODEL's heads and trace it on the meta device (no memory, no weights).

    For a saved model (`X.safetensors` with its sidecar) the tensor names and shapes in the file are
    compared with the model the sidecar rebuilds, reading only the file's header.
    """
    from headfit.check import check
    from headfit.render import render
    from headfit.saved import is_adapted_weights, load_model, saved_weights_problems

    built = load_model(model, num_classes=num_classes, device="meta", trust_code=trust_code)
    weights, weight_problems = (
        saved_weights_problems(model, built) if is_adapted_weights(model) else (None, [])
    )
    report = check(built, list(inputs) or None, depth=depth, name=model)
    report.weights = weights
    report.problems.extend(weight_problems)
    if as_json:
        print_json(report.to_dict())
    else:
        console().print(render(report))
    raise SystemExit(0 if report.ok else 1)
