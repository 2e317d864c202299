"""``headfit sizes MODEL``: which input sizes the model accepts (read from the model, probed on meta)."""

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


@click.command("sizes", short_help="Say which input sizes MODEL accepts.")
@click.argument("model")
@input_option("The input whose H and W are varied (default: the model family's usual input).")
@num_classes_option()
@trust_code_option()
@json_flag()
def command(
    model: str, inputs: tuple[str, ...], num_classes: int | None, trust_code: bool, as_json: bool
) -> None:
    """Say which input sizes MODEL accepts, such as "H and W multiples of 32, >= 64"."""
    from headfit.render import render
    from headfit.saved import load_model
    from headfit.sizes import sizes

    built = load_model(model, num_classes=num_classes, device="meta", trust_code=trust_code)
    answer = sizes(built, list(inputs) or None, name=model)
    if as_json:
        print_json(answer.to_dict())
    else:
        console().print(render(answer))
    raise SystemExit(0 if answer.accepted_any else 1)
