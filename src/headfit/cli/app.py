"""Output and exit for every command, in one place (hatch's ``Application``).

Every failure of a command ends here: one paragraph on stderr and an exit code, and with ``--json``
also one error document (``{"ok": false, "error": {...}}``) where the command's JSON goes, so a
script that asked for JSON always gets exactly one document. A bug in headfit itself exits 70 with
one paragraph asking for a report; ``HEADFIT_DEBUG=1`` shows its traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click

from headfit.errors import HeadfitError, UsageError

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in headfit
DEBUG_ENV = "HEADFIT_DEBUG"

# ctx.meta keys (ctx.meta is shared by the group's context and the command's)
JSON_TARGET = "headfit.json_target"  # "-" for stdout, or the file of `run --json PATH`
JSON_PRINTED = "headfit.json_printed"  # the command already printed its one document
JSON_STDOUT = "headfit.json_stdout"  # the real stdout while a --json command's prints go to stderr
RESOURCES = "headfit.resources"  # an ExitStack that lives as long as the command, failures included
COMMAND_LINE = "headfit.command_line"  # the command's name and arguments, for error messages
STDOUT = "-"


def console(stderr: bool = False):  # -> rich.console.Console, imported lazily
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def json_flag(help: str = "Print one JSON document.") -> Any:
    """The ``--json`` flag of a command: its value is ``as_json``; failures then answer in JSON too."""
    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=_json_to_stdout, help=help)


def input_option(
    help: str = "A positional input: `2x3x224x224` or `[3x800x1333,3x600x900]` (repeat for several).",
) -> Any:
    """``--input SPEC`` (repeatable): its value is ``inputs``, a tuple of spec strings."""
    return click.option("--input", "inputs", multiple=True, metavar="SPEC", help=help)


def num_classes_option(required: bool = False, help: str | None = None) -> Any:
    """``--num-classes K`` / ``-k K``: object classes, never the background, in every command."""
    return click.option(
        "--num-classes",
        "-k",
        "num_classes",
        type=int,
        required=required,
        metavar="K",
        callback=_class_count,
        help=help
        or "Build MODEL for K object classes, not counting the background: headfit adds the background "
        "class where the model counts one (a torchvision Faster R-CNN for 3 classes gets 4 outputs).",
    )


def _class_count(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    from headfit.spec import check_class_count

    return None if value is None else check_class_count(value, "--num-classes")


def trust_code_option() -> Any:
    """``--trust-code``: let a saved model's sidecar import and call code outside torchvision and timm."""
    return click.option(
        "--trust-code",
        is_flag=True,
        help="Allow a saved MODEL whose sidecar names a builder outside torchvision and timm "
        "(`file.py:CALLABLE`, `package.module:CALLABLE`) to import and run that code.",
    )


def inference_options(command: Any) -> Any:
    """``--batch``, ``--device`` and ``--workers`` of the commands that run a checkpoint on images."""
    options = (
        click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Images per forward."),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="DataLoader workers decoding images.",
        ),
    )
    for option in reversed(options):  # decorators apply bottom-up; --help lists them in this order
        command = option(command)
    return command


def _json_to_stdout(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_TARGET] = STDOUT
        resources = ctx.meta.get(RESOURCES)
        if resources is not None:
            resources.enter_context(_prints_to_stderr(ctx.meta))
        else:  # the command invoked on its own, not through the headfit group
            ctx.with_resource(_prints_to_stderr(ctx.meta))
    return value


@contextlib.contextmanager
def _prints_to_stderr(meta: dict[str, Any]) -> Iterator[None]:
    """While a --json command runs, what the user's model prints (on import, in forward) goes to
    stderr, so stdout holds the one JSON document and nothing else.

    Python's ``print`` is redirected with ``sys.stdout``; C extensions, subprocesses and
    ``os.write(1, ...)`` write to file descriptor 1 itself, so that is pointed at stderr with
    ``dup2`` too, and the document goes to a duplicate of the real stdout.
    """
    stdout = sys.stdout
    meta[JSON_STDOUT] = stdout
    with contextlib.ExitStack() as stack:
        real = stack.enter_context(_fd_1_to_stderr(stdout))
        if real is not None:
            meta[JSON_STDOUT] = real
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        try:
            yield
        finally:
            meta[JSON_STDOUT] = stdout  # the error document of a failure is written after this exits


@contextlib.contextmanager
def _fd_1_to_stderr(stdout: Any) -> Iterator[Any]:
    """Point file descriptor 1 at stderr for the command; yield a text stream on the real stdout.

    Yields ``None`` when ``sys.stdout`` is not file descriptor 1 (a test's capture, click's
    CliRunner): then only Python-level prints can reach it, and ``redirect_stdout`` handles those.
    """
    try:
        is_fd_1 = stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and ValueError
        is_fd_1 = False
    if not is_fd_1:
        yield None
        return
    stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = open(saved, "w", encoding=stdout.encoding or "utf-8", closefd=False)  # noqa: SIM115
    try:
        yield real
    finally:
        with contextlib.suppress(OSError, ValueError):
            real.flush()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def json_to_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback of ``run --json PATH``: a failure of headfit itself writes its error document there."""
    if value:
        ctx.meta[JSON_TARGET] = value
    return value


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    import json  # not on the text path of `headfit explain`, which must start fast

    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    stdout = meta.get(JSON_STDOUT, sys.stdout)
    stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    stdout.flush()
    meta[JSON_PRINTED] = True


def abort(message: str, code: int = 2) -> NoReturn:
    """Stop the command: ``message`` becomes one paragraph on stderr (and the error document)."""
    error = UsageError(message)
    error.exit_code = code
    raise error


@contextlib.contextmanager
def answer_failures(ctx: click.Context | None = None) -> Iterator[None]:
    """Turn every failure into one paragraph, its exit code and (with --json) one error document."""
    meta = ctx.meta if ctx is not None else {}
    try:
        # undone before a failure is answered, also when click fails while parsing (its context is
        # then never closed, so ctx.with_resource would leave stdout redirected)
        with contextlib.ExitStack() as resources:
            meta[RESOURCES] = resources
            yield
    except click.exceptions.Exit:  # --help, --version, ctx.exit(): not failures
        raise
    except HeadfitError as exc:
        _fail(meta, type(exc).__name__, str(exc), exc.exit_code)
    except click.ClickException as exc:  # bad arguments, found while parsing
        _fail(meta, "UsageError", _usage_message(exc), exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        _fail(meta, "KeyboardInterrupt", "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        if _out_of_memory(exc):
            _fail(meta, "OutOfMemoryError", _memory_message(exc), 2)
        _fail(meta, "InternalError", _internal_message(exc, meta), EXIT_INTERNAL)


def _fail(meta: dict[str, Any], kind: str, message: str, code: int) -> NoReturn:
    target = meta.get(JSON_TARGET) or (STDOUT if _asks_for_json(meta.get(COMMAND_LINE)) else None)
    if target is not None and not meta.get(JSON_PRINTED):
        _write_error_document(target, kind, message, code)
    paragraph = " ".join(message.split())  # a message quoting a multi-line error stays one paragraph
    # soft wrap: the terminal wraps the line, so paths and commands in it stay whole for copy and paste
    console(stderr=True).print(f"[bold red]error:[/] {_escape(paragraph)}", soft_wrap=True, highlight=False)
    raise SystemExit(code)


def _write_error_document(target: str, kind: str, message: str, code: int) -> None:
    document = {"ok": False, "error": {"type": kind, "message": message, "exit_code": code}}
    if target == STDOUT:
        print_json(document)
        return
    import json

    with contextlib.suppress(OSError):  # the path itself may be what was wrong; stderr still says it
        with open(target, "w", encoding="utf-8") as file:
            file.write(json.dumps(document, indent=2) + "\n")


def _asks_for_json(command_line: Sequence[str] | None) -> bool:
    """Whether a command line whose parsing failed asked for ``--json`` on stdout.

    The ``--json`` callback has not run when click stops at an unknown option or a missing value,
    so read the tokens: ``--json`` before any ``--``. ``run --json PATH`` keeps stdout for the
    script and is left out.
    """
    if not command_line or command_line[0] == "run":
        return False
    tokens = list(command_line[1:])
    if "--" in tokens:
        tokens = tokens[: tokens.index("--")]
    return "--json" in tokens


def _usage_message(exc: click.ClickException) -> str:
    """Click's message in headfit's tone (lowercase, no trailing period) and where the usage is."""
    message = exc.format_message().rstrip(".")
    message = message[:1].lower() + message[1:]
    if isinstance(exc, click.UsageError):
        command = exc.ctx.command_path if exc.ctx is not None else "headfit"
        message += f"; `{command} --help` shows the usage"
    return message


def _out_of_memory(exc: Exception) -> bool:
    """A MemoryError, or torch's allocator refusing (``RuntimeError``/``OutOfMemoryError``)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _memory_message(exc: Exception) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return (
        f"ran out of memory ({lines[-1].strip()}): the model, its inputs or --num-classes ask for more "
        "memory than this machine has. Try smaller inputs or a smaller class count"
    )


def _internal_message(exc: Exception, meta: dict[str, Any]) -> str:
    import shlex

    words = meta.get(COMMAND_LINE) or sys.argv[1:]
    command_line = shlex.join(["headfit", *words])
    lines = str(exc).strip().splitlines()
    last_line = f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
    return (
        f"headfit hit an internal error ({last_line}). This is a bug in headfit, not in your model "
        f"or files: please report it with this command line: `{command_line}`. "
        f"Run it again with {DEBUG_ENV}=1 to see the traceback."
    )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
