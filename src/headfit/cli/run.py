"""``headfit run [--json PATH] SCRIPT [ARGS...]``: run a script as ``python SCRIPT ARGS`` would, and
explain an uncaught exception from the live objects in its frames."""

from __future__ import annotations

import click

from headfit.cli.app import json_to_file


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--json",
    "json_path",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    callback=json_to_file,
    help="Write the diagnosis document to PATH.",
)
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(json_path: str | None, script: str, args: tuple[str, ...]) -> None:
    """Run SCRIPT like `python SCRIPT ARGS`; on an uncaught exception print the traceback, then the diagnosis."""
    from headfit.live import run_script

    raise SystemExit(run_script(script, list(args), json_path=json_path))
