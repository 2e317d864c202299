"""``%load_ext headfit`` driven through IPython's InteractiveShell."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    yield ip
    ip.run_line_magic("unload_ext", "headfit")
    InteractiveShell.clear_instance()


def test_load_ext_shows_the_traceback_then_the_diagnosis(shell, capsys) -> None:
    shell.run_line_magic("load_ext", "headfit")
    shell.run_cell(
        "import torch\nfrom torch import nn\nnet = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(16, 4, 3))"
    )
    result = shell.run_cell("net(torch.rand(1, 3, 12, 12))")
    assert result.error_in_exec is not None
    out = capsys.readouterr()
    assert "RuntimeError" in out.out + out.err  # IPython's own traceback is kept
    assert "error[" in out.err
    assert "net[1] = nn.Conv2d(8, 4, kernel_size=3)" in out.err


def test_unload_ext_restores_the_plain_traceback(shell, capsys) -> None:
    shell.run_line_magic("load_ext", "headfit")
    shell.run_line_magic("unload_ext", "headfit")
    shell.run_cell("raise RuntimeError('mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)')")
    out = capsys.readouterr()
    assert "RuntimeError" in out.out + out.err
    assert "error[" not in out.err
    shell.run_line_magic("load_ext", "headfit")
