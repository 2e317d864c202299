"""``headfit demo``: reproduce the classic FCOS error on a model built here, diagnose it, fix it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from headfit.cli.app import abort, console, json_flag, print_json


@click.command("demo")
@json_flag()
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the checkpoint and the adapted weights to this folder (default: a temporary one).",
)
def command(as_json: bool, out_dir: Path | None) -> None:
    """Make the classic FCOS head mistake, diagnose it, fix it with `adapt`, and `check` the result."""
    from headfit.demo import run_demo
    from headfit.render import render

    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            abort(f"cannot make the folder `--out-dir {out_dir}`: {exc.strerror}", 2)
        run = run_demo(out_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="headfit-demo-") as tmp:
            run = run_demo(Path(tmp))
    if as_json:
        print_json(run.to_dict())
    else:
        console().print(render(run))
    raise SystemExit(0 if run.ok else 1)
