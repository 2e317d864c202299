"""``headfit sizes MODEL``: which input sizes the model accepts (read from the model, probed on meta)."""

from __future__ import annotations

import click

from headfit.cli.app import console, json_flag, print_json


@click.command("sizes")
@click.argument("model")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="SPEC",
    help="The input whose H and W are varied (default: the model family's usual input).",
)
@click.option("--num-classes", type=int, help="Passed to the model builder.")
@json_flag()
def command(model: str, inputs: tuple[str, ...], num_classes: int | None, as_json: bool) -> None:
    """Say which input sizes MODEL accepts, e.g. "H and W multiples of 32, >= 64"."""
    from headfit.sizes import sizes
    from headfit.spec import build_model

    built = build_model(model, num_classes=num_classes, device="meta")
    answer = sizes(built, list(inputs) or None)
    if as_json:
        print_json({"model": model, **answer.to_dict()})
    else:
        out = console()
        if answer.accepted_any:
            out.print(f"[bold]{model}[/] accepts [bold green]{answer.summary}[/]", highlight=False)
        else:
            out.print(f"[bold]{model}[/]: [bold red]{answer.summary}[/]", highlight=False)
        for note in answer.notes:
            out.print(f"  [blue]= note:[/] {note}", highlight=False)
        tried = ", ".join(f"{h}x{w}{'' if ok else ' (rejected)'}" for h, w, ok in answer.probes)
        out.print(f"  [blue]= probed on meta:[/] {tried}", highlight=False)
    raise SystemExit(0 if answer.accepted_any else 1)
