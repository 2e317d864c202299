"""A new user's mistakes, on every command: one paragraph on stderr naming what was wrong, the
contract's exit code, never a raw traceback; with ``--json`` exactly one JSON document on stdout.

Most cases run in-process through ``headfit.cli.main`` (as the console script does); the few that
need a fresh interpreter (the traceback switch, a real KeyboardInterrupt) use a subprocess.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_support import run_in_process
from headfit.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_in_process(capsys, *argv)


def assert_one_paragraph(err: str, *names: str) -> None:
    """stderr is one `error:` paragraph (no traceback, no blank line) that names each of ``names``."""
    assert "Traceback" not in err
    text = err.strip()
    assert text.startswith("error: "), err
    assert "\n" not in text, err  # one line: the terminal wraps it, paths stay whole
    flat = " ".join(text.split())
    for name in names:
        assert name in flat, (name, flat)


def one_json_document(out: str) -> dict:
    """stdout holds exactly one JSON document (json.loads fails on anything after it)."""
    return json.loads(out)


def assert_error_document(out: str, code: int, kind: str, *names: str) -> None:
    document = one_json_document(out)
    assert document["ok"] is False
    assert document["error"]["type"] == kind
    assert document["error"]["exit_code"] == code
    for name in names:
        assert name in document["error"]["message"]


# ---------------------------------------------------------------------------------------------------
# arguments click rejects: headfit's paragraph, and JSON when asked, even before --json is parsed


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["check", "torchvision:resnet18", "--depth", "-1"], ["--depth", "-1", "headfit check --help"]),
        (["check", "torchvision:resnet18", "--bogus"], ["--bogus", "headfit check --help"]),
        (["check", "torchvision:resnet18", "--input"], ["--input", "requires an argument"]),
        (["sizes"], ["MODEL", "headfit sizes --help"]),
        (["nosuch"], ["nosuch", "headfit --help"]),
    ],
)
def test_bad_arguments_give_one_paragraph_and_exit_2(capsys, argv, names):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_paragraph(err, *names)
    assert "Usage:" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "torchvision:resnet18", "--depth", "-1", "--json"],
        ["check", "torchvision:resnet18", "--json", "--bogus"],  # the parser stops before --json is read
        ["check", "torchvision:resnet18", "--json", "--input"],
        ["adapt", "torchvision:resnet18", "--json"],  # required options missing
    ],
)
def test_bad_arguments_with_json_print_one_error_document(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert_error_document(out, 2, "UsageError")
    assert_one_paragraph(err)


def test_json_after_a_double_dash_is_text_not_the_flag(capsys):
    code, out, _ = run_cli(capsys, "explain", "--", "--json")
    assert code == 3  # not an error message, and not a JSON answer
    assert not out.lstrip().startswith("{")


def test_unknown_code_with_json_prints_one_error_document(capsys):
    code, out, err = run_cli(capsys, "explain", "--code", "HF999", "--json")
    assert code == 2
    assert_error_document(out, 2, "UsageError", "HF999", "HF101")
    assert_one_paragraph(err, "HF999")


def test_model_spec_error_with_json_prints_one_error_document(capsys):
    code, out, err = run_cli(capsys, "check", "torchvision:resnet5", "--json")
    assert code == 2
    assert_error_document(out, 2, "ModelSpecError", "resnet5", "torchvision:resnet50")
    assert_one_paragraph(err, "resnet5", "torchvision:resnet50")


def test_run_json_path_gets_the_error_document_and_stdout_stays_empty(capsys, tmp_path):
    report = tmp_path / "report.json"
    code, out, err = run_cli(capsys, "run", "--json", str(report), str(tmp_path / "missing.py"))
    assert code == 2
    assert out == ""
    assert_one_paragraph(err, "missing.py", "does not exist")
    assert json.loads(report.read_text())["error"]["type"] == "UsageError"


# ---------------------------------------------------------------------------------------------------
# a bug in headfit: one paragraph asking for a report, exit 70; HEADFIT_DEBUG=1 shows the traceback


@pytest.fixture
def buggy_sizes(monkeypatch):
    def broken(*args, **kwargs):
        return {}["a key headfit forgot"]

    monkeypatch.setattr(importlib.import_module("headfit.sizes"), "sizes", broken)


def test_internal_error_is_one_paragraph_with_the_command_line(capsys, monkeypatch, buggy_sizes):
    monkeypatch.delenv("HEADFIT_DEBUG", raising=False)
    code, out, err = run_cli(capsys, "sizes", "torchvision:alexnet")
    assert code == 70
    assert out == ""
    assert_one_paragraph(
        err, "internal error", "KeyError: 'a key headfit forgot'", "`headfit sizes torchvision:alexnet`"
    )
    assert "HEADFIT_DEBUG=1" in err


def test_internal_error_with_json_prints_one_error_document(capsys, monkeypatch, buggy_sizes):
    monkeypatch.delenv("HEADFIT_DEBUG", raising=False)
    code, out, _ = run_cli(capsys, "sizes", "torchvision:alexnet", "--json")
    assert code == 70
    assert_error_document(out, 70, "InternalError", "a key headfit forgot")


def test_internal_error_traceback_with_headfit_debug(monkeypatch, buggy_sizes):
    monkeypatch.setenv("HEADFIT_DEBUG", "1")
    with pytest.raises(KeyError, match="a key headfit forgot"):
        main(["sizes", "torchvision:alexnet"])


def test_interrupt_exits_130_with_one_line(tmp_path):
    model = tmp_path / "slow.py"
    model.write_text("def build():\n    raise KeyboardInterrupt\n")
    proc = subprocess.run(
        [sys.executable, "-m", "headfit", "check", f"{model}:build"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 130
    assert_one_paragraph(proc.stderr, "interrupted")


# ---------------------------------------------------------------------------------------------------
# MODEL specs


@pytest.fixture
def models_file(tmp_path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def build(num_classes=4):
                return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(8, num_classes))

            def exits():
                raise SystemExit(3)

            instance = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(8, 2))
            """
        )
    )
    return path


def test_a_module_level_instance_is_the_model_not_called(capsys, models_file):
    code, out, err = run_cli(capsys, "check", f"{models_file}:instance", "--json")
    assert code == 0, err
    document = one_json_document(out)
    assert document["ok"] is True
    assert document["trace"]["modules"][-1]["output_shapes"] == [[2, 2]]


def test_num_classes_on_a_module_level_instance_is_refused(capsys, models_file):
    code, _, err = run_cli(capsys, "check", f"{models_file}:instance", "--num-classes", "3")
    assert code == 2
    assert_one_paragraph(err, "--num-classes", "instance")


def test_a_builder_that_exits_is_a_bad_spec_not_a_silent_exit(capsys, models_file):
    code, out, err = run_cli(capsys, "check", f"{models_file}:exits", "--json")
    assert code == 2
    assert_error_document(out, 2, "ModelSpecError", "SystemExit")
    assert_one_paragraph(err, f"{models_file}:exits", "SystemExit")


def test_a_file_that_parses_argv_on_import_is_a_bad_spec(capsys, tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys\nsys.exit(2)  # as argparse does on arguments it does not know\n")
    code, _, err = run_cli(capsys, "sizes", f"{script}:model")
    assert code == 2
    assert_one_paragraph(err, "importing", "train.py", "SystemExit: 2", '`if __name__ == "__main__":`')


@pytest.mark.parametrize("count", ["0", "-1"])
def test_num_classes_below_one_is_refused(capsys, models_file, count):
    code, _, err = run_cli(capsys, "check", f"{models_file}:build", "--num-classes", count)
    assert code == 2
    assert_one_paragraph(err, "--num-classes", ">= 1", f"got {count}")


# ---------------------------------------------------------------------------------------------------
# adapt's output: refused before any work when it cannot be written or read back


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("model.weird", ["model.weird", ".safetensors, .pt or .pth", "-o model.safetensors"]),
        ("folder", ["is a folder", "folder/model.safetensors"]),
        ("a_file/model.safetensors", ["a_file", "is a file, not a folder"]),
    ],
)
def test_adapt_refuses_an_output_it_cannot_write(capsys, tmp_path, models_file, name, names):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    code, out, err = run_cli(
        capsys, "adapt", f"{models_file}:build", "-k", "3", "-o", str(tmp_path / name), "--json"
    )
    assert code == 2
    assert_error_document(out, 2, "UsageError")
    assert_one_paragraph(err, *names)


def test_adapt_output_in_a_read_only_folder_is_refused(capsys, tmp_path, models_file, monkeypatch):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    monkeypatch.setattr(
        importlib.import_module("headfit.saved").os, "access", lambda path, mode: Path(path) != read_only
    )
    code, _, err = run_cli(
        capsys, "adapt", f"{models_file}:build", "-k", "3", "-o", str(read_only / "m.safetensors")
    )
    assert code == 2
    assert_one_paragraph(err, "read-only", "not writable")


def test_adapt_write_failure_is_one_paragraph(capsys, tmp_path, models_file):
    out_path = tmp_path / "m.safetensors"
    Path(f"{out_path}.json").mkdir()  # the sidecar's name is taken by a folder
    code, _, err = run_cli(capsys, "adapt", f"{models_file}:build", "-k", "3", "-o", str(out_path))
    assert code == 2
    assert_one_paragraph(err, "cannot write the adapted model", "m.safetensors")


# ---------------------------------------------------------------------------------------------------
# run: python's own output for a script that never ran; a --json PATH that cannot be written


def headfit_run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "headfit", "run", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_run_a_script_with_a_syntax_error_shows_it_as_python_does(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("def f(:\n    pass\n")
    proc = headfit_run(str(script))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f'  File "{script}", line 1\n')
    assert "SyntaxError: invalid syntax" in proc.stderr
    assert "runpy" not in proc.stderr and "live.py" not in proc.stderr


def test_run_json_under_a_file_is_refused_before_the_script_runs(tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "train.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nraise ValueError('late')\n")
    (tmp_path / "a_file").write_text("")
    proc = headfit_run("--json", str(tmp_path / "a_file" / "doc.json"), str(script))
    assert proc.returncode == 2
    assert not marker.exists()
    assert_one_paragraph(proc.stderr, "a_file", "is a file, not a folder")


def test_run_json_in_a_new_folder_is_written(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("raise ValueError('late')\n")
    report = tmp_path / "reports" / "today" / "doc.json"
    proc = headfit_run("--json", str(report), str(script))
    assert proc.returncode == 1
    assert json.loads(report.read_text())["error"] == {"type": "ValueError", "message": "late"}


# ---------------------------------------------------------------------------------------------------
# input specs


def test_a_2d_input_for_a_conv_net_is_a_rank_problem_not_a_channel_one(capsys, models_file):
    code, out, _ = run_cli(capsys, "check", f"{models_file}:build", "--input", "2x3", "--json")
    assert code == 1
    diagnosis = one_json_document(out)["diagnosis"]
    assert diagnosis["code"] == "HF105"
    assert all(cause["attribute"] != "in_channels" for cause in diagnosis["causes"])
    assert "x[None, None]" in diagnosis["causes"][0]["fix"]


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("2x3x0x224", ["'2x3x0x224'", "dimension of 0", "2x3x224x224"]),
        ("[3x64x64,3x0x64]", ["'3x0x64'", "dimension of 0"]),
        ("abc", ["'abc'", "2x3x224x224"]),
        ("[3x800x1333", ["'[3x800x1333'", "[3x800x1333,3x600x900]"]),
        ("99999999999999999999999x3x224x224", ["more than a tensor can hold", "2x3x224x224"]),
        # the element count fits int64 but its bytes do not (torch: "Storage size calculation overflowed")
        ("99999999x3x99999x99999", ["'99999999x3x99999x99999'", "bytes", "2x3x224x224"]),
        ("9" * 5000 + "x3", ["more than a tensor can hold"]),  # int() refuses 4,300+ digits
        ("x".join(["1"] * 100), ["100 dimensions", "at most 64"]),
        # an unbounded repeat: refused before the list is made (it grew to 5 GB before)
        ("[3x80x80]x99999999", ["99,999,999 images", "at most 4,096"]),
        ("[" + ",".join(["3x8x8"] * 5000) + "]", ["5,000 images", "at most 4,096"]),
        ("[3x80x80]x0", ["repeat", "at least 1"]),
    ],
)
def test_bad_input_specs_are_one_paragraph_and_exit_2(capsys, models_file, spec, names):
    code, out, err = run_cli(capsys, "sizes", f"{models_file}:build", "--input", spec, "--json")
    assert code == 2
    assert_error_document(out, 2, "UsageError")
    assert_one_paragraph(err, *names)


# ---------------------------------------------------------------------------------------------------
# the Python API: a wrong argument is a TypeError that says what to pass


@pytest.mark.parametrize("value", [None, 123, ["RuntimeError: x"]])
def test_explain_names_what_it_takes(value):
    import headfit

    with pytest.raises(TypeError, match=f"explain\\(\\) takes an exception .*not {type(value).__name__}"):
        headfit.explain(value)


def test_explain_reads_bytes_as_text():
    import headfit

    message = b"mat1 and mat2 shapes cannot be multiplied (2x512 and 2048x10)"
    assert headfit.explain(message).to_dict() == headfit.explain(message.decode()).to_dict()
    assert headfit.explain(message).code is not None


@pytest.mark.parametrize("function", ["check", "adapt", "load_weights"])
def test_api_functions_name_the_model_they_need(function):
    import headfit

    call = {
        "check": lambda model: headfit.check(model, "2x3x32x32"),
        "adapt": lambda model: headfit.adapt(model, 3),
        "load_weights": lambda model: headfit.load_weights(model, {}),
    }[function]
    with pytest.raises(TypeError, match=f"{function}\\(\\) takes a torch.nn.Module, not str.*load_model"):
        call("torchvision:resnet18")
    with pytest.raises(TypeError, match="not int"):
        call(42)


@pytest.mark.parametrize("source", [None, 123])
def test_load_weights_needs_a_source(source):
    import torch

    import headfit

    with pytest.raises(TypeError, match=f"needs a checkpoint: .* not {type(source).__name__}"):
        headfit.load_weights(torch.nn.Linear(2, 2), source)


def test_running_out_of_memory_is_not_called_a_bug(capsys, monkeypatch):
    def allocate(*args, **kwargs):  # what torch's CPU allocator raises for a 10^9-class head
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 32000000000 bytes. Error code 12 (Cannot allocate memory)"
        )

    monkeypatch.delenv("HEADFIT_DEBUG", raising=False)
    monkeypatch.setattr(importlib.import_module("headfit.sizes"), "sizes", allocate)
    code, out, err = run_cli(capsys, "sizes", "torchvision:alexnet", "--json")
    assert code == 2
    assert_error_document(out, 2, "OutOfMemoryError", "32000000000 bytes")
    assert_one_paragraph(err, "ran out of memory", "32000000000 bytes")
    assert "bug" not in err


def test_demo_out_dir_under_a_file_is_one_paragraph(capsys, tmp_path):
    (tmp_path / "a_file").write_text("")
    code, out, err = run_cli(capsys, "demo", "--out-dir", str(tmp_path / "a_file" / "sub"), "--json")
    assert code == 2
    assert_error_document(out, 2, "UsageError", "--out-dir")
    assert_one_paragraph(err, "a_file", "Not a directory")


def test_a_spec_without_its_source_suggests_the_torchvision_one(capsys):
    code, _, err = run_cli(capsys, "check", "resnet50")
    assert code == 2
    assert_one_paragraph(err, "'resnet50'", "Did you mean `torchvision:resnet50`?")


def test_a_file_spec_without_a_callable_says_to_name_one(capsys, models_file):
    code, _, err = run_cli(capsys, "sizes", str(models_file))
    assert code == 2
    assert_one_paragraph(err, f"`{models_file}:CALLABLE`")


def test_a_problem_at_the_model_itself_points_at_the_model(capsys, tmp_path):
    path = tmp_path / "two.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            class TwoInputs(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(4, 2)

                def forward(self, a, b):
                    return self.proj(a) + self.proj(b)
            """
        )
    )
    code, out, _ = run_cli(capsys, "check", f"{path}:TwoInputs")
    assert code == 1
    assert "--> the model" in out and "--> ``" not in out
    flat = " ".join(out.split())
    assert "missing 1 required positional argument: 'b'" in flat
    assert "help: --input 2x4 --input 2x4 # one --input per argument of forward(a, b)" in flat


def test_an_unknown_kept_class_says_what_to_give_instead():
    from headfit.classnames import resolve_keep
    from headfit.errors import UsageError

    names = ["__background__", "person", "bicycle", "car"]
    with pytest.raises(
        UsageError,
        match=r"no class named 'unicorn'\. Give one of its 3 class names \(e\.g\. 'person'\) or a class id \(0\.\.3\)",
    ):
        resolve_keep(["unicorn"], names, 4, counts_background=True)


# ---------------------------------------------------------------------------------------------------
# explain


def test_explain_reads_the_file_text_names(capsys, tmp_path):
    import torch

    try:
        torch.nn.Linear(2048, 10)(torch.zeros(2, 512))
    except RuntimeError as exc:
        (tmp_path / "error.log").write_text(f"RuntimeError: {exc}\n")
    code, out, _ = run_cli(capsys, "explain", str(tmp_path / "error.log"), "--json")
    assert code == 0
    assert one_json_document(out)["code"] == "HF103"


@pytest.mark.parametrize("stdin", [b"", b"\x00\xff\xfe" * 5000, b"shape mismatch lorem ipsum\n" * 400_000])
def test_explain_answers_input_that_is_no_error_with_exit_3(stdin):
    proc = subprocess.run(
        [sys.executable, "-m", "headfit", "explain", "--json", "-"],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 3
    document = json.loads(proc.stdout)
    assert document["code"] is None and document["reason"]
    if len(stdin) > 1 << 20:  # read up to 1 MiB, and said so
        assert b"more than 1 MiB" in proc.stderr and b"Traceback" not in proc.stderr
    else:
        assert proc.stderr == b""


# ---------------------------------------------------------------------------------------------------
# an exception whose __str__ raises: python prints `<exception str() failed>`, headfit too


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("__str__ is broken")


def test_explain_an_exception_whose_str_raises():
    import headfit

    diagnosis = headfit.explain(_Unprintable())
    assert diagnosis.code is None
    assert diagnosis.to_dict()["error"]["message"] == "<exception str() failed>"


def test_run_a_script_whose_exception_cannot_be_printed(tmp_path):
    script = tmp_path / "unprintable.py"
    script.write_text(
        "class E(Exception):\n    def __str__(self):\n        raise ValueError('broken')\n\nraise E()\n"
    )
    report = tmp_path / "doc.json"
    proc = headfit_run("--json", str(report), str(script))
    assert proc.returncode == 1
    assert "E: <exception str() failed>" in proc.stderr
    assert "internal error" not in proc.stderr
    assert json.loads(report.read_text())["error"] == {"type": "E", "message": "<exception str() failed>"}


# ---------------------------------------------------------------------------------------------------
# --json: what the user's model prints goes to stderr, stdout holds the one document


@pytest.fixture
def chatty_file(tmp_path) -> Path:
    path = tmp_path / "chatty.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            print("loading chatty.py")

            class Net(nn.Module):
                def __init__(self, num_classes=3):
                    super().__init__()
                    self.fc = nn.Linear(4, num_classes)

                def forward(self, x):
                    print("debug: x is", tuple(x.shape))
                    return self.fc(x)

            def broken():
                print("about to fail")
                raise ValueError("no such layer")
            """
        )
    )
    return path


@pytest.mark.parametrize(("command", "expected"), [("check", 0), ("sizes", 2)])  # sizes: 2x4 has no H, W
def test_prints_of_the_model_do_not_break_the_json_document(capsys, chatty_file, command, expected):
    code, out, err = run_cli(capsys, command, f"{chatty_file}:Net", "--input", "2x4", "--json")
    assert code == expected
    one_json_document(out)
    assert "loading chatty.py" in err


def test_prints_before_a_failure_do_not_break_the_error_document(capsys, chatty_file):
    code, out, err = run_cli(capsys, "check", f"{chatty_file}:broken", "--json")
    assert code == 2
    assert_error_document(out, 2, "ModelSpecError", "no such layer")
    assert "about to fail" in err


def test_a_failure_at_the_default_input_says_it_was_a_default(capsys, tmp_path):
    path = tmp_path / "seq.py"
    path.write_text("import torch.nn as nn\n\ndef lstm():\n    return nn.LSTM(10, 20, 2)\n")
    code, out, _ = run_cli(capsys, "check", f"{path}:lstm", "--json")
    assert code == 1
    problem = one_json_document(out)["problems"][0]
    assert problem["fix"] == "--input SPEC  # the input `LSTM` takes, if not 2x3x224x224"
    code, out, _ = run_cli(capsys, "check", f"{path}:lstm", "--input", "5x2x10", "--json")
    assert code == 0, out


@pytest.mark.parametrize("command", ["check", "adapt"])
def test_a_class_count_beyond_int32_is_refused(capsys, tmp_path, models_file, command):
    argv = [command, f"{models_file}:build", "--num-classes", str(10**30)]
    if command == "adapt":
        argv += ["-o", str(tmp_path / "m.safetensors")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_paragraph(err, ">= 1 and at most 2,147,483,647", f"got {10**30}")


def test_a_builder_error_is_shown_without_torchs_cpp_backtrace(capsys, tmp_path):
    path = tmp_path / "huge.py"
    path.write_text("import torch\n\ndef build():\n    return torch.nn.Linear(4, 10**30)\n")
    code, _, err = run_cli(capsys, "check", f"{path}:build")
    assert code == 2
    assert_one_paragraph(err, "Overflow when unpacking long long")
    assert "frame #0" not in err and "Exception raised from" not in err


def test_a_failed_verification_with_json_prints_only_the_adapt_document(capsys, tmp_path):
    from adapt_support import SPEC, TinyFamily

    TinyFamily.sabotage = "touch_body"
    try:
        code, out, err = run_cli(
            capsys, "adapt", SPEC, "-k", "3", "-o", str(tmp_path / "m.safetensors"), "--json"
        )
    finally:
        TinyFamily.sabotage = None
    assert code == 1
    document = one_json_document(
        out
    )  # the adapt run, with its failed verification; no error document after it
    assert document["adapt"]["verification"]["ok"] is False
    assert_one_paragraph(err, "`body.conv.weight`")


def test_a_json_command_that_fails_while_parsing_gives_stdout_back(capsys):
    before = sys.stdout
    code, out, _ = run_cli(capsys, "adapt", "torchvision:resnet18", "--json")  # --num-classes missing
    assert code == 2 and one_json_document(out)["ok"] is False
    assert sys.stdout is before


@pytest.mark.parametrize(
    ("sidecar", "names"),
    [
        ("{not json", ["cannot read the sidecar", "as JSON"]),
        (
            '{"model": "torchvision:resnet18", "num_classes": "three"}',
            ["`num_classes` 'three'", "whole number"],
        ),
        ('{"model": ["torchvision:resnet18"], "num_classes": 3}', ["must be a MODEL spec"]),
    ],
)
def test_a_hand_edited_sidecar_is_one_paragraph(capsys, tmp_path, sidecar, names):
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"")
    Path(f"{weights}.json").write_text(sidecar)
    code, _, err = run_cli(capsys, "check", str(weights))
    assert code == 2
    assert_one_paragraph(err, "m.safetensors.json", *names)


def test_a_torch_checkpoint_named_safetensors_is_read_by_its_bytes(tmp_path):
    import torch

    import headfit

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    saved = tmp_path / "weights.pth"
    torch.save(model.state_dict(), saved)
    renamed = saved.rename(tmp_path / "weights.safetensors")
    report = headfit.load_weights(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)), renamed)
    assert sorted(report.loaded) == sorted(model.state_dict())


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("raise ValueError('config missing')\n", ["ValueError: config missing", "python -c 'import"]),
        ("import sys\nsys.exit(4)\n", ["exited (SystemExit: 4)", '`if __name__ == "__main__":`']),
    ],
)
def test_a_package_module_that_fails_on_import_is_a_bad_spec(capsys, tmp_path, monkeypatch, body, names):
    name = f"userpkg_{tmp_path.name}"  # a fresh package per case: nothing cached in sys.modules
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "models.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = run_cli(capsys, "check", f"{name}.models:build")
    assert code == 2
    assert_one_paragraph(err, f"{name}.models", *names)


def test_a_model_file_in_a_folder_with_a_colon(capsys, tmp_path, models_file):
    folder = tmp_path / "run:3"
    folder.mkdir()
    (folder / "models.py").write_text(models_file.read_text())
    code, out, err = run_cli(capsys, "check", f"{folder}/models.py:build", "--json")
    assert code == 0, err
    assert one_json_document(out)["ok"] is True


def test_adapt_suggests_a_check_command_that_pastes_with_spaces(capsys, tmp_path, models_file):
    out_path = tmp_path / "my models" / "cats and dogs.safetensors"
    code, out, err = run_cli(capsys, "adapt", f"{models_file}:build", "-k", "2", "-o", str(out_path))
    assert code == 0, err
    assert f"headfit check '{out_path}'" in " ".join(out.split())  # rich wraps the line at spaces
