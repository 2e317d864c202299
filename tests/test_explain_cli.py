"""`headfit explain`: exit codes, JSON document, stdin, --code, and no torch import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from headfit.cli import cli

SEED = "shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512"


def _run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, ["explain", *args], input=stdin)


def test_seed_text_is_diagnosed_exit_0():
    result = _run(SEED)
    assert result.exit_code == 0
    assert "error[HF101]" in result.output
    assert "model.head.classification_head.num_classes = 2" in result.output


def test_json_document_follows_the_contract():
    result = _run("--json", SEED)
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert (doc["code"], doc["category"]) == ("HF101", "view_size_mismatch")
    assert doc["error"]["message"] == SEED
    assert doc["causes"][0]["fix"] == "model.head.classification_head.num_classes = 2"
    assert {"summary", "facts", "location", "causes"} <= set(doc)


@pytest.mark.parametrize("arg", [None, "-"])
def test_reads_stdin_when_text_is_absent_or_dash(arg):
    args = ["--json"] + ([arg] if arg else [])
    result = _run(
        *args,
        stdin=f'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nRuntimeError: {SEED}\n',
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["code"] == "HF101"


@pytest.mark.parametrize("text", ["", "the weather is nice", "\x00\x01binary\x02"])
def test_not_an_error_exits_3_with_a_reason(text):
    result = _run("--json", text)
    assert result.exit_code == 3
    doc = json.loads(result.output)
    assert doc["code"] is None and doc["reason"]


def test_unrecognised_error_exits_3():
    result = _run("--json", "RuntimeError: something nobody has seen before went wrong")
    assert result.exit_code == 3
    assert json.loads(result.output)["reason"] == "no headfit rule matches this error message"


def test_code_prints_the_long_explanation():
    result = _run("--code", "hf101")
    assert result.exit_code == 0
    assert "HF101" in result.output and "view_size_mismatch" in result.output
    assert "How to fix it" in result.output


def test_unknown_code_exits_2_listing_known_codes():
    proc = subprocess.run(
        [sys.executable, "-m", "headfit", "explain", "--code", "HF999"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "HF999" in proc.stderr and "HF101" in proc.stderr and "Traceback" not in proc.stderr


def test_explain_does_not_import_torch():
    code = (
        "import sys\n"
        "from headfit.cli import main\n"
        "try:\n"
        f"    main(['explain', '--json', {SEED!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(str(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_importtime_shows_no_torch():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "headfit", "explain", SEED], capture_output=True, text=True
    )
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")
    }
    assert "headfit.explain.engine" in imported
    assert not {m for m in imported if m.split(".")[0] == "torch"}


@pytest.mark.parametrize("as_json", [False, True])
def test_escape_bytes_of_the_input_are_never_printed_back(as_json):
    """Binary or hostile input: no ESC sequence, no bidi override reaches the terminal or the document."""
    hostile = "RuntimeError: \x1b]0;owned\x07\x1b[2J\x1b[31mmat1 and mat2\u202e shapes \x9b6n\x00cannot be multiplied (2x512 and 2048x10)"
    result = _run(*(["--json"] if as_json else []), stdin=hostile + "\r\n")
    assert result.exit_code == 0, result.output
    for byte in ("\x1b", "\x07", "\x9b", "\x00", "\u202e", "\r"):
        assert byte not in result.output
    assert "2048" in result.output


def test_stdin_is_read_up_to_1_mib_and_says_it_was_cut():
    big = f"RuntimeError: {SEED}\n" + "x" * (2 << 20)
    result = CliRunner().invoke(cli, ["explain"], input=big)
    assert result.exit_code in (0, 3), result.output[:500]
    assert "more than 1 MiB" in result.output and "first 1,048,576 bytes" in result.output
