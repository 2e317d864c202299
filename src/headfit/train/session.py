"""One ``headfit train`` session: prepare, show the plan, train, show the result; stops rendered.

A stop the run found itself (pre-flight problems, a non-finite loss, an exception in the loop)
prints its findings (data problems, check problems, the diagnosis) before the one-paragraph error
and exit code that ``cli/app.py`` gives every failure; with ``--json`` the document carries them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headfit.errors import HeadfitError
from headfit.train.loop import TrainingStopped
from headfit.train.prepare import PreflightFailed, Prepared
from headfit.train.state import STATE_FILE


def run_training(
    prepare: Callable[[], Prepared], out: Any, *, as_json: bool = False, print_json: Callable[[Any], None]
) -> None:
    from headfit.train.report import render_plan, render_result, result_document

    try:
        prepared = prepare()
    except PreflightFailed as exc:
        _show_findings(exc.details, out, as_json, print_json, str(exc))
        raise
    for part in render_plan(prepared.plan):
        out.print(part)
    try:
        result = prepared.trainer.fit()
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(prepared)) from None
    except TrainingStopped as exc:
        from headfit.render import diagnosis_text

        if as_json:
            print_json(_failure(str(exc), exc.exit_code, {"diagnosis": exc.diagnosis.to_dict()}))
        else:
            out.print(diagnosis_text(exc.diagnosis))
        raise
    if as_json:
        print_json(result_document(prepared.plan, result))
    else:
        for line in render_result(result, prepared.plan.evaluate):
            out.print(line, soft_wrap=True)  # the paths and the evaluate command stay whole for pasting


def _show_findings(
    details: list[Any], out: Any, as_json: bool, print_json: Callable[[Any], None], message: str
) -> None:
    from headfit.render import problem_text
    from headfit.train.report import render_data_problems

    if as_json:
        print_json(_failure(message, 1, {"problems": [p.to_dict() for p in details]}))
        return
    data = [p for p in details if hasattr(p, "image_id")]
    for line in render_data_problems(data):
        out.print(line)
    for problem in (p for p in details if not hasattr(p, "image_id")):
        out.print(problem_text(problem))


class Interrupted(HeadfitError):
    exit_code = 130


def _interrupted(prepared: Prepared) -> str:
    trainer = prepared.trainer
    where = f"epoch {trainer.position.epoch + 1}, batch {trainer.position.batch}"
    if (trainer.run / STATE_FILE).is_file():
        return (
            f"interrupted at {where}; the last saved state is in {trainer.run / STATE_FILE}: continue with "
            f"`headfit train --resume {trainer.run}`"
        )
    return f"interrupted at {where}, before the first save: nothing to resume"


def _failure(message: str, code: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {"ok": False, "error": {"type": "TrainingStopped", "message": message, "exit_code": code}, **extra}
