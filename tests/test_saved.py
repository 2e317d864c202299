"""Saved models you can trust: a sidecar runs no code unless told, ``check`` reads the weights' header,
a checkpoint that leaves the body random is never "adapted", re-adapting keeps the chain whole, a
damaged file is called damaged, and a failed write leaves the last good file."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from adapt_support import SPEC, TinyFamily, TinyNet
from cli_support import run_in_process
from headfit.errors import CheckpointError, ModelSpecError, UntrustedCodeError, UsageError
from headfit.saved import SIDECAR_VERSION, adapt_file, load_model, rebuild, sidecar_path
from headfit.spec import names_a_library_builder


@pytest.fixture(autouse=True)
def no_sabotage():
    TinyFamily.sabotage = None
    yield
    TinyFamily.sabotage = None


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_in_process(capsys, *argv, fold_err=True)


def tiny_state(num_classes: int = 10) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return TinyNet(num_classes).state_dict()


def saved_with_sidecar(folder: Path, model: str, name: str = "evil.safetensors") -> Path:
    weights = folder / name
    save_file({k: v.contiguous() for k, v in tiny_state(2).items()}, str(weights))
    sidecar_path(weights).write_text(json.dumps({"model": model, "num_classes": 2}))
    return weights


# ---------------------------------------------------------------------------------------------------
# 1. a sidecar names code: nothing but torchvision and timm builders runs without --trust-code

HELPER = """
import pathlib
pathlib.Path(__file__).with_name("helper-ran").write_text("imported")

def build():
    pathlib.Path(__file__).with_name("helper-ran").write_text("called")
    import torch.nn as nn
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
"""

# run in a child interpreter: if a refusal ever regresses, abort() and pause() kill or hang the child only
CHILD = """
import contextlib, io, json, sys
from headfit.cli import main

answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
    answers.append({"argv": argv, "code": code, "err": " ".join(err.getvalue().split())})
print(json.dumps(answers))
"""


def test_hostile_sidecars_run_nothing_in_any_command(tmp_path):
    (tmp_path / "helper.py").write_text(HELPER)
    hostile = {
        "os:abort": "import the module `os` and call `os.abort`",
        "signal:pause": "import the module `signal` and call `signal.pause`",
        "pdb:set_trace": "import the module `pdb` and call `pdb.set_trace`",
        f"{tmp_path / 'helper.py'}:build": f"run the Python file `{tmp_path / 'helper.py'}` and call its `build`",
    }
    argvs, expected = [], []
    for i, (builder, words) in enumerate(hostile.items()):
        weights = str(saved_with_sidecar(tmp_path, builder, f"evil{i}.safetensors"))
        for command in (["check", weights], ["sizes", weights], ["adapt", weights, "-k", "3", "-o", "o.pt"]):
            argvs.append(command)
            expected.append(words)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argvs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert child.returncode == 0, child.stderr
    answers = json.loads(child.stdout)
    assert len(answers) == len(argvs)
    for answer, words in zip(answers, expected, strict=True):
        assert answer["code"] == 2, answer
        assert answer["err"].startswith("error: refusing to rebuild"), answer
        assert words in answer["err"] and "--trust-code" in answer["err"], answer
    assert not (tmp_path / "helper-ran").exists() and not (tmp_path / "o.pt").exists()


def test_trust_code_runs_the_sidecars_builder(tmp_path):
    (tmp_path / "helper.py").write_text(HELPER)
    model = tmp_path / "helper.py"
    out = tmp_path / "own.safetensors"
    adapt_file(f"{model}:build", 3, out)
    (tmp_path / "helper-ran").unlink()
    with pytest.raises(UntrustedCodeError, match=r"call its `build`.*trust_code=True"):
        load_model(out)
    assert not (tmp_path / "helper-ran").exists()
    rebuilt = rebuild(out, trust_code=True)
    assert rebuilt[-1].out_features == 3 and (tmp_path / "helper-ran").read_text() == "called"


def test_the_check_command_adapt_suggests_carries_trust_code(capsys, tmp_path):
    (tmp_path / "helper.py").write_text(HELPER)
    out = tmp_path / "own.safetensors"
    code, stdout, err = run_cli(capsys, "adapt", f"{tmp_path / 'helper.py'}:build", "-k", "3", "-o", str(out))
    assert code == 0, err
    assert f"headfitcheck{out}--trust-code" in "".join(stdout.split())  # rich folds long paths
    code, _, err = run_cli(capsys, "check", str(out), "--trust-code")
    assert code == 0, err


@pytest.mark.parametrize(
    ("spec", "library"),
    [
        ("torchvision:resnet18", True),
        ("timm:resnet18", True),
        ("torchvision:x:os:abort", False),  # the builder is what follows the last colon
        ("torchvision:x/../../evil.py:build", False),
        ("timm:hf-hub:org/model", False),
        ("os:abort", False),
        ("helper.py:build", False),
        ("torchvision:", False),
    ],
)
def test_only_torchvision_and_timm_builders_count_as_library_code(spec, library):
    assert names_a_library_builder(spec) is library


def test_a_library_sidecar_loads_without_trust(tmp_path):
    out = tmp_path / "r18.safetensors"
    adapt_file("torchvision:resnet18", 3, out)
    assert load_model(out).fc.out_features == 3
    doc = json.loads(sidecar_path(out).read_text())
    assert doc["sidecar_version"] == SIDECAR_VERSION and doc["model"] == "torchvision:resnet18"


def test_a_sidecar_from_a_newer_headfit_is_refused(tmp_path):
    weights = saved_with_sidecar(tmp_path, "torchvision:resnet18")
    sidecar_path(weights).write_text(
        json.dumps(
            {"model": "torchvision:resnet18", "num_classes": 2, "sidecar_version": SIDECAR_VERSION + 1}
        )
    )
    with pytest.raises(ModelSpecError, match="this headfit reads sidecars up to version 1"):
        load_model(weights)


# ---------------------------------------------------------------------------------------------------
# 2. check OUT reads the weights' header and compares it with the rebuilt model


@pytest.fixture
def saved_tiny(tmp_path) -> Path:
    out = tmp_path / "tiny3.safetensors"
    adapt_file(SPEC, 3, out)
    return out


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_bytes(os.urandom(1000)), "corrupt or truncated"),
        (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        (lambda p: p.write_bytes(p.read_bytes()[:-40]), "corrupt or truncated"),
    ],
    ids=["random-bytes", "empty", "truncated"],
)
def test_check_of_damaged_saved_weights_exits_2(capsys, saved_tiny, damage, words):
    damage(saved_tiny)
    code, out, err = run_cli(capsys, "check", str(saved_tiny), "--trust-code")
    assert code == 2 and out == "" and words in err and "arbitrary code" not in err


def test_check_of_weights_that_do_not_fit_the_sidecar_exits_1_with_a_table(capsys, saved_tiny):
    other = {k: v for k, v in tiny_state(7).items()}  # another head: fc is [7, 8], the sidecar says 3
    other["body.extra.weight"] = torch.zeros(2)
    del other["body.bn.running_var"]
    save_file(other, str(saved_tiny))
    code, out, _ = run_cli(capsys, "check", str(saved_tiny), "--trust-code")
    flat = " ".join(out.split())
    assert code == 1
    assert (
        "error[HF242]: the weights in `tiny3.safetensors` do not fit the model its sidecar rebuilds" in flat
    )
    assert "fc.weight │ [7, 8] │ [3, 8]" in flat and "body.bn.running_var │ absent" in flat
    assert "body.extra.weight │ │ absent" in flat
    code, out, _ = run_cli(capsys, "check", str(saved_tiny), "--trust-code", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["weights"]["ok"] is False and doc["problems"][0]["code"] == "HF242"
    assert doc["weights"]["missing"] == ["body.bn.running_var"]


def test_check_of_good_saved_weights_compares_them(capsys, saved_tiny):
    code, out, _ = run_cli(capsys, "check", str(saved_tiny), "--trust-code", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["weights"]["ok"] and doc["weights"]["matched"] == len(TinyNet(3).state_dict())


# ---------------------------------------------------------------------------------------------------
# 3. a checkpoint that leaves tensors outside the head random fails the load, unless asked for


def test_a_checkpoint_missing_body_tensors_fails_the_load(tmp_path):
    state = tiny_state()
    del state["body.conv.weight"]
    state["body.bn.weight"] = torch.ones(5)
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError) as info:
        adapt_file(SPEC, 3, tmp_path / "out.safetensors", weights=tmp_path / "partial.pt")
    message = " ".join(str(info.value).split())
    assert "1 are not in it (e.g. `body.conv.weight`)" in message
    assert "1 have other shapes (e.g. `body.bn.weight`: checkpoint [5], model [8])" in message
    assert "--partial-load" in message and info.value.exit_code == 2
    assert not (tmp_path / "out.safetensors").exists()

    run = adapt_file(
        SPEC, 3, tmp_path / "out.safetensors", weights=tmp_path / "partial.pt", partial_load=True
    )
    assert run.partial and run.ok and run.output is not None
    outside = len(TinyNet(3).state_dict()) - 2
    assert (run.pretrained, run.tensors) == (
        outside - 2,
        outside + 2,
    )  # conv.weight and bn.weight stayed random
    assert run.to_dict()["pretrained_tensors"] == outside - 2


def test_a_head_for_another_class_count_is_not_a_partial_load(tmp_path):
    torch.save(tiny_state(91), tmp_path / "coco.pt")  # only the head (replaced anyway) does not fit
    run = adapt_file(SPEC, 3, tmp_path / "out.safetensors", weights=tmp_path / "coco.pt")
    assert run.ok and not run.partial and run.pretrained == run.tensors - 2


def test_resnet18_weights_into_resnet50_name_the_right_builder(capsys, tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    out = tmp_path / "r50.safetensors"
    code, _, err = run_cli(
        capsys,
        "adapt",
        "torchvision:resnet50",
        "-k",
        "3",
        "--weights",
        str(tmp_path / "r18.pth"),
        "-o",
        str(out),
    )
    assert code == 2 and not out.exists()
    assert "does not fit `torchvision:resnet50`" in err and "fit `torchvision:resnet18`: did you mean" in err


@pytest.mark.slow
def test_a_faster_rcnn_v1_checkpoint_into_v2_names_v1(capsys, tmp_path):
    from torchvision.models import detection

    v1 = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    torch.save(v1.state_dict(), tmp_path / "v1.pth")
    code, _, err = run_cli(
        capsys, "adapt", "torchvision:fasterrcnn_resnet50_fpn_v2", "-k", "3", "--weights", str(tmp_path / "v1.pth"),
        "-o", str(tmp_path / "v2.safetensors"),
    )  # fmt: skip
    assert code == 2 and "fit `torchvision:fasterrcnn_resnet50_fpn`: did you mean" in err


def test_without_weights_the_model_is_re_headed_not_adapted(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "adapt", SPEC, "-k", "3", "-o", str(tmp_path / "t.safetensors"))
    flat = " ".join(out.split())
    assert code == 0 and "re-headed `headfit_tiny_test_models:TinyNet` for 3 classes" in flat
    assert "adapted `" not in flat and "weights: none loaded (no --weights)" in flat


# ---------------------------------------------------------------------------------------------------
# 4. re-adapting an adapted file


def test_re_adapting_refuses_to_overwrite_its_source(capsys, saved_tiny):
    for target in (saved_tiny, sidecar_path(saved_tiny).with_suffix("")):
        code, _, err = run_cli(capsys, "adapt", str(saved_tiny), "-k", "4", "-o", str(target), "--trust-code")
        assert code == 2 and "would overwrite" in err and "which this run reads" in err
    assert json.loads(sidecar_path(saved_tiny).read_text())["num_classes"] == 3


def test_re_adapting_stores_the_base_spec_with_absolute_paths(capsys, tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def build(num_classes=10):
                return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "adapt", "nets.py:build", "-k", "3", "-o", "a.safetensors")
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "adapt", "a.safetensors", "-k", "5", "-o", "b.safetensors", "--trust-code"
    )
    assert code == 0, err
    flat = " ".join(out.split())
    assert "rebuilt the saved model a.safetensors from its sidecar" in flat
    assert "random" not in flat, flat
    assert "weights: 2 of 4 tensors come from the saved model" in flat
    doc = json.loads(Path("b.safetensors.json").read_text())
    assert doc["model"] == f"{tmp_path / 'nets.py'}:build" and doc["num_classes"] == 5
    assert doc["adapted_from"]["path"] == str(tmp_path / "a.safetensors")
    code, _, err = run_cli(capsys, "check", "b.safetensors", "--trust-code")
    assert code == 0, err
    a, b = load_model("a.safetensors", trust_code=True), load_model("b.safetensors", trust_code=True)
    assert torch.equal(a[0].weight, b[0].weight) and b[-1].out_features == 5


def test_a_sidecar_naming_another_saved_model_is_refused(tmp_path, saved_tiny):
    weights = saved_with_sidecar(tmp_path, str(saved_tiny), "chained.safetensors")
    with pytest.raises(ModelSpecError, match="names another saved model"):
        load_model(weights, trust_code=True)


def test_a_saved_model_brings_its_own_weights(tmp_path, saved_tiny):
    torch.save(tiny_state(), tmp_path / "x.pt")
    with pytest.raises(UsageError, match="brings its own weights"):
        adapt_file(str(saved_tiny), 4, tmp_path / "y.safetensors", weights=tmp_path / "x.pt", trust_code=True)


# ---------------------------------------------------------------------------------------------------
# writes: a temporary file moved into place, so a failure keeps the last good file


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, suffix):
    out = tmp_path / f"t{suffix}"
    adapt_file(SPEC, 3, out)
    before, sidecar_before = out.read_bytes(), sidecar_path(out).read_bytes()

    def disk_full(state, path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    monkeypatch.setattr(importlib.import_module("safetensors.torch"), "save_file", disk_full)
    with pytest.raises(
        UsageError, match="no space left on the device; the previous files, if any, are unchanged"
    ):
        adapt_file(SPEC, 4, out)
    assert out.read_bytes() == before and sidecar_path(out).read_bytes() == sidecar_before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, sidecar_path(out).name])


def test_outputs_are_ordinary_files(tmp_path):
    out = tmp_path / "t.pt"
    adapt_file(SPEC, 3, out)
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
