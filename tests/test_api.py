"""The public surface: the names ``headfit`` exports are the real functions and types, always."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import subprocess
import sys
import types

import pytest
from click.testing import CliRunner

import headfit
from headfit.cli import cli, main

SAME_NAMED = ("explain", "check", "adapt", "sizes")  # functions that share their name with a module


def test_same_named_functions_stay_functions_after_their_modules_are_imported():
    code = (
        "import inspect, json, types\n"
        "import headfit\n"
        "import headfit.check, headfit.adapt, headfit.sizes, headfit.explain\n"
        "from headfit.check import CheckReport\n"
        "from headfit.explain import engine\n"
        "from headfit import check as imported\n"
        f"names = {SAME_NAMED!r}\n"
        "print(json.dumps({n: type(getattr(headfit, n)).__name__ for n in names} | "
        "{'imported': type(imported).__name__, 'module': type(headfit.check.__module__).__name__}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kinds = json.loads(done.stdout)
    assert kinds == {**dict.fromkeys(SAME_NAMED, "function"), "imported": "function", "module": "str"}


@pytest.mark.parametrize("name", SAME_NAMED)
def test_the_function_is_the_real_one_with_its_signature(name):
    function = getattr(headfit, name)
    module = sys.modules[f"headfit.{name}"]
    assert isinstance(module, types.ModuleType) and function is module.__dict__[name]
    assert "**options" not in str(inspect.signature(function))


def test_adapt_shows_its_options():
    params = inspect.signature(headfit.adapt).parameters
    assert {"keep_classes", "class_names", "source_names", "verify", "family_options"} <= set(params)


def test_every_exported_name_resolves():
    for name in headfit.__all__:
        assert getattr(headfit, name) is not None, name
    assert {"sizes", "load_model", "rebuild", "adapt_with_report", "CheckReport", "AdaptReport"} <= set(
        headfit.__all__
    )
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        headfit.nope  # noqa: B018


def test_the_version_is_the_installed_one():
    assert headfit.__version__ == importlib.metadata.version("headfit")


def test_importing_headfit_imports_no_torch():
    code = "import sys, headfit\nheadfit.explain\nprint('torch' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# ---------------------------------------------------------------------------------------------------
# the command line: one meaning per option


def _json(capsys, *argv: str) -> tuple[int, dict]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("spec", "layer", "outputs"),
    [
        ("torchvision:fasterrcnn_resnet50_fpn", "roi_heads.box_predictor.cls_score", 4),  # 3 + background
        ("torchvision:fcos_resnet50_fpn", "head.classification_head.cls_logits", 3),  # FCOS counts none
        ("torchvision:resnet18", "fc", 3),
    ],
)
def test_num_classes_counts_object_classes_in_check(capsys, spec, layer, outputs):
    code, doc = _json(
        capsys,
        "check",
        spec,
        "--num-classes",
        "3",
        "--input",
        "[3x64x64]" if "_fpn" in spec else "1x3x64x64",
        "--json",
    )
    call = next(m for m in doc["trace"]["modules"] if m["module"] == layer)
    assert (
        code == 0
        and call["output_shapes"][0][-1 if layer != "head.classification_head.cls_logits" else 1] == outputs
    )


@pytest.mark.parametrize("command", ["check", "sizes", "adapt"])
def test_num_classes_help_says_the_background_is_added(command):
    text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
    assert "--num-classes, -k K" in text or "-k, --num-classes K" in text
    assert "not counting the background" in text and "headfit adds the background class" in text
    assert "--trust-code" in text


def test_help_texts_are_sentences():
    for command in ("explain", "check", "sizes", "adapt", "run", "demo"):
        ctx = cli.make_context("headfit", [command, "--help"], resilient_parsing=True)
        sub = cli.get_command(ctx, command)
        for param in sub.params:
            if param.help:
                assert param.help[0].isupper() and param.help.endswith((".", ")")), (
                    command,
                    param.name,
                    param.help,
                )
    assert "HFnnn" in CliRunner().invoke(cli, ["explain", "--help"]).output
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert "Say which input sizes MODEL accepts." in listing
