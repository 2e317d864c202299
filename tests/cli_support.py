"""Run ``headfit`` in this process, as a user's shell would: exit code, stdout and stderr."""

from __future__ import annotations

import pytest

from headfit.cli import main


def run_in_process(capsys, *argv: str, fold_err: bool = False) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``headfit ARGV``; ``fold_err`` joins stderr's wrapped lines
    with single spaces, so a test can look for a sentence that rich broke across lines."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    code = info.value.code
    exit_code = code if isinstance(code, int) else 0 if code is None else 1
    return exit_code, out.out, " ".join(out.err.split()) if fold_err else out.err
