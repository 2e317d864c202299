"""``headfit adapt``: exit codes, output, JSON, and the seed case end to end (FCOS 91 -> 2 classes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adapt_support import SPEC, TinyFamily, TinyNet
from cli_support import run_in_process


@pytest.fixture(autouse=True)
def no_sabotage():
    TinyFamily.sabotage = None
    yield
    TinyFamily.sabotage = None


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_in_process(capsys, "adapt", *argv)


@pytest.fixture
def pretrained(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "pretrained.pth"
    torch.save({"model": {"module." + k: v for k, v in TinyNet(10).state_dict().items()}}, path)
    return path


def test_adapt_prints_the_load_table_what_changed_and_the_verification(capsys, tmp_path, pretrained):
    out = tmp_path / "tiny3.safetensors"
    code, stdout, stderr = run_cli(
        capsys,
        SPEC,
        "--num-classes",
        "3",
        "--weights",
        str(pretrained),
        "--keep-classes",
        "4,5,6",
        "-o",
        str(out),
    )
    assert code == 0, stderr
    assert "stripped prefix `module.`" in stdout and "(entry `model`)" in stdout
    assert "replaced `fc`" in stdout and "verification: ok" in stdout
    assert "new rows start from pretrained rows 4, 5, 6" in stdout
    assert f"wrote{out}and{out}.json" in "".join(stdout.split())  # rich wraps long paths
    assert out.is_file() and Path(f"{out}.json").is_file()


def test_json_is_one_document(capsys, tmp_path, pretrained):
    out = tmp_path / "tiny3.pt"
    code, stdout, _ = run_cli(
        capsys,
        SPEC,
        "-k",
        "3",
        "--weights",
        str(pretrained),
        "--class-names",
        "a,b,c",
        "-o",
        str(out),
        "--json",
    )
    doc = json.loads(stdout)
    assert code == 0 and doc["ok"] and doc["output"] == str(out)
    assert doc["load"]["skipped"] == [] and len(doc["load"]["loaded"]) == len(TinyNet().state_dict())
    assert doc["adapt"]["class_names"] == ["a", "b", "c"] and doc["adapt"]["verification"]["ok"]
    assert json.loads(Path(f"{out}.json").read_text())["format"] == "pt"


def test_verification_failure_exits_1_and_writes_nothing(capsys, tmp_path):
    TinyFamily.sabotage = "touch_body"
    out = tmp_path / "bad.safetensors"
    code, stdout, stderr = run_cli(capsys, SPEC, "-k", "3", "-o", str(out))
    assert code == 1 and not out.exists()
    assert "verification: failed" in stdout and "`body.conv.weight`" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-k", "0"], "whole number >= 1"),
        (["-k", "2", "--keep-classes", "1,2,3"], "lists 3 classes but you asked for 2"),
        (["-k", "2", "--weights", "missing.pth"], "does not exist"),
        (["-k", "2", "--format", "pt", "-o", "x.safetensors"], "does not match the output name"),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_2(capsys, tmp_path, args, message):
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "o.safetensors")]
    code, _, stderr = run_cli(capsys, SPEC, *args)
    assert code == 2 and message in " ".join(stderr.split()) and "Traceback" not in stderr


def test_unsafe_checkpoint_is_refused_with_exit_2(capsys, tmp_path):
    path = tmp_path / "full.pt"
    torch.save(TinyNet(10), path)
    code, _, stderr = run_cli(
        capsys, SPEC, "-k", "3", "--weights", str(path), "-o", str(tmp_path / "o.safetensors")
    )
    assert code == 2 and "refusing to load" in stderr


@pytest.mark.slow  # 106 s here (pytest --durations, -n 2)
def test_seed_case_fcos_coco_to_two_classes_then_check(tmp_path):
    """`headfit adapt torchvision:fcos_resnet50_fpn --num-classes 2 --weights coco.pth`, then `check`."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    coco = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    headfit = [sys.executable, "-m", "headfit"]

    adapted = subprocess.run(
        [*headfit, "adapt", "torchvision:fcos_resnet50_fpn", "--num-classes", "2", "--weights", "coco.pth"]
        + ["-o", "fcos2.safetensors", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert adapted.returncode == 0, adapted.stderr
    doc = json.loads(adapted.stdout)
    skipped = {s["key"]: s for s in doc["load"]["skipped"]}
    assert doc["load"]["loaded"] and not skipped, "the checkpoint is loaded into the 91-class model first"
    assert doc["adapt"]["replaced"] == ["head.classification_head.cls_logits"]
    assert doc["adapt"]["attributes"] == {"head.classification_head.num_classes": 2}
    assert doc["adapt"]["head_outputs"] == 2 and not doc["adapt"]["background"]

    from headfit.saved import rebuild

    model = rebuild(tmp_path / "fcos2.safetensors")
    assert model.head.classification_head.cls_logits.out_channels == 2
    assert model.head.classification_head.num_classes == 2
    original = coco.state_dict()
    for key, tensor in model.state_dict().items():
        if not key.startswith("head.classification_head.cls_logits."):
            assert torch.equal(tensor, original[key]), key

    checked = subprocess.run(
        [*headfit, "check", "fcos2.safetensors", "--input", "[3x1333x762]x2"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
