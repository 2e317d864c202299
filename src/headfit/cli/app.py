"""Output and exit for every command, in one place (hatch's ``Application``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from headfit.errors import HeadfitError


def console(stderr: bool = False):  # -> rich.console.Console, imported lazily
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    import json  # not on the text path of `headfit explain`, which must start fast

    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def abort(message: str, code: int = 2) -> None:
    """One paragraph on stderr, then exit with ``code``."""
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise SystemExit(code)


@contextlib.contextmanager
def abort_on_headfit_errors() -> Iterator[None]:
    """Turn headfit's own errors into one paragraph and their exit code; never a raw traceback."""
    try:
        yield
    except HeadfitError as exc:
        abort(_escape(str(exc)), exc.exit_code)
    except click.exceptions.Exit:
        raise
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
