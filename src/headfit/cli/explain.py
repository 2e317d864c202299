"""``headfit explain [TEXT]``: diagnose an error message or a pasted traceback. Never imports torch."""

from __future__ import annotations

import re
import sys
from typing import BinaryIO

import click

from headfit.cli.app import abort, console, json_flag, print_json

EXIT_DIAGNOSED = 0
EXIT_UNRECOGNISED = 3


@click.command("explain")
@click.argument("text", required=False)
@json_flag()
@click.option("--code", "code", metavar="HFnnn", help="Print the long explanation of a diagnosis code.")
def command(text: str | None, as_json: bool, code: str | None) -> None:
    """Diagnose TEXT, an error message or a whole traceback, or the file TEXT names (stdin when TEXT is
    absent or `-`)."""
    if code is not None:
        _explain_code(code, as_json)
        return
    from headfit.explain import diagnose_text

    diagnosis = diagnose_text(_read_input(text))
    if as_json:
        print_json(diagnosis.to_dict())
    else:
        from headfit.render import render

        console().print(render(diagnosis))
    raise SystemExit(EXIT_DIAGNOSED if diagnosis.recognised else EXIT_UNRECOGNISED)


MAX_INPUT = 1 << 20  # 1 MiB: a traceback is a few KiB; `headfit explain < /dev/urandom` must end
# C0 controls but tab and newline, DEL, C1 controls and bidi overrides: an ESC sequence would drive
# the terminal, a bidi override would show other text than the one diagnosed
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# whole ANSI sequences first (colour codes of an IPython or rich traceback), so no "[31m" is left behind
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x9b[0-?]*[ -/]*[@-~]")


def _read_input(text: str | None) -> str:
    """The text to diagnose, without control characters (it is printed back), at most 1 MiB."""
    if text is not None and text != "-":
        return printable(_file_text(text) if _names_a_file(text) else text)
    if sys.stdin is None or sys.stdin.isatty():
        abort("give the error as TEXT, or pipe it on stdin: `headfit explain - < error.txt`", 2)
    return printable(_bounded(sys.stdin.buffer, "stdin"))


def printable(text: str) -> str:
    """``text`` with escape bytes and other control characters dropped (``\\r\\n`` read as ``\\n``)."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


def _bounded(stream: BinaryIO, what: str) -> str:
    data = stream.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        data = data[:MAX_INPUT]
        console(stderr=True).print(
            f"note: {what} holds more than 1 MiB; headfit read its first {MAX_INPUT:,} bytes "
            "(a traceback is a few KiB: pass the part that ends with the error line)",
            highlight=False,
        )
    return data.decode("utf-8", errors="replace")


def _names_a_file(text: str) -> bool:
    """``headfit explain error.log``: a one-line TEXT that is the path of a file means its contents."""
    import os

    return "\n" not in text and len(text) < 4096 and os.path.isfile(text)


def _file_text(path: str) -> str:
    try:
        with open(path, "rb") as file:
            return _bounded(file, f"`{path}`")
    except OSError as exc:
        abort(f"cannot read `{path}`: {exc.strerror}", 2)


def _explain_code(code: str, as_json: bool) -> None:
    from headfit.catalogue import all_codes, code_info

    info = code_info(code)
    if info is None:
        known = ", ".join(all_codes())
        abort(f"unknown diagnosis code `{code}`; known codes: {known}", 2)
    if as_json:
        print_json({"code": info.code, "category": info.category, "title": info.title, "text": info.text})
        return
    from rich.markdown import Markdown
    from rich.markup import escape

    out = console()
    out.print(f"[bold]{info.code}[/] ({info.category}): {escape(info.title)}", highlight=False)
    out.print(Markdown(info.text))
