"""`headfit check` and `headfit sizes` on the command line: exit codes, the table, rustc-like problems,
one JSON document, and one paragraph for bad input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from headfit.cli import main

SEED_FILE = """
import torch, torchvision

def seed():
    model = torchvision.models.detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    model.head.classification_head.cls_logits = torch.nn.Conv2d(256, 2, 3, 1, 1)
    return model

def broken():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(5, 2))

def raises():
    raise ValueError("no config file")

def not_a_model():
    return {"weights": 1}
"""


@pytest.fixture(scope="module")
def seed_spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "seed_model.py"
    path.write_text(textwrap.dedent(SEED_FILE))
    return str(path)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_seed_exits_1_naming_module_and_attribute(capsys, seed_spec):
    code, out, _ = _run(capsys, "check", f"{seed_spec}:seed", "--input", "[3x1333x762,3x1333x762]")
    assert code == 1
    assert "error[HF201]:" in out and "HF240: the shape trace raised in `head.classification_head`" in out
    assert "`head.classification_head`.`num_classes`" in out
    assert "help: model.head.classification_head.num_classes = 2" in out
    assert "2x3x1344x768" in out  # the table shows what the transform made of the input


def test_the_classic_fcos_mistake_prints_each_fix_once(capsys):
    """Lint (HF201), the failed trace (HF240) and the message's diagnosis (HF101) name one culprit."""
    code, out, _ = _run(capsys, "check", f"{MISTAKES}:fcos_num_classes_left_at_91", "--input", "[3x64x64]")
    flat = " ".join(out.split())  # rich wraps long lines
    helps = [h.split(" = note:")[0].split(" cause ")[0].strip() for h in flat.split("help:")[1:]]
    assert code == 1 and len(helps) == len(set(helps)) == 3, helps
    assert flat.count("help: model.head.classification_head.num_classes = 2") == 1
    assert "help: the fix of error[HF201] above" in flat
    assert "1 problem found" in flat and "error[HF101]" in flat


def test_seed_json_is_one_check_document(capsys, seed_spec):
    code, out, _ = _run(capsys, "check", f"{seed_spec}:seed", "--input", "[3x1333x762]x2", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["model"] == f"{seed_spec}:seed"
    assert doc["trace"]["stopped_at"] == "head.classification_head"
    assert any(p["attribute"] == "num_classes" for p in doc["problems"])
    assert doc["diagnosis"]["causes"][0]["fix"] == "model.head.classification_head.num_classes = 2"


def test_healthy_model_exits_0_with_a_depth_limited_table(capsys):
    code, out, _ = _run(capsys, "check", "torchvision:resnet18", "--depth", "1")
    assert code == 0
    assert "ok: no problem found in `torchvision:resnet18`" in out
    assert "layer1" in out and "layer1.0" not in out


def test_depth_limits_the_json_modules_too(capsys):
    code, out, _ = _run(capsys, "check", "torchvision:resnet18", "--json", "--depth", "1")
    modules = {m["module"] for m in json.loads(out)["trace"]["modules"]}
    assert code == 0 and "layer1" in modules and not any("." in m for m in modules)


def test_num_classes_reaches_the_builder(capsys):
    code, out, _ = _run(capsys, "check", "torchvision:fcos_resnet50_fpn", "--num-classes", "3", "--json")
    doc = json.loads(out)
    head = next(m for m in doc["trace"]["modules"] if m["module"] == "head.classification_head.cls_logits")
    assert code == 0 and head["output_shapes"][0][1] == 3


def test_broken_custom_model_exits_1(capsys, seed_spec):
    code, out, _ = _run(capsys, "check", f"{seed_spec}:broken", "--input", "1x3x8x8")
    assert code == 1 and "`model[1]`" in out


MISTAKES = Path(__file__).with_name("check_mistakes.py")


@pytest.mark.parametrize(
    "builder, module, attribute",
    [
        ("fcos_num_classes_left_at_91", "head.classification_head", "num_classes"),
        ("retinanet_num_classes_left_at_91", "head.classification_head", "num_classes"),
        ("fasterrcnn_cls_score_only", "roi_heads.box_predictor", "bbox_pred"),
        ("maskrcnn_box_predictor_only", "roi_heads.mask_predictor", "mask_fcn_logits"),
        ("ssd_num_columns_left_at_91", "head.classification_head.module_list.0", "out_channels"),
        ("resnet50_linear_512", "fc", "in_features"),
        ("googlenet_main_head_only", "aux1.fc2", "out_features"),
        ("deeplab_classifier_only", "aux_classifier.4", "out_channels"),
        ("timm_resnet_fc_only", "", "num_classes"),
        ("sequential_width_gap", "3", "in_features"),
    ],
)
def test_each_injected_head_mistake_exits_1_naming_module_and_attribute(capsys, builder, module, attribute):
    code, out, _ = _run(capsys, "check", f"{MISTAKES}:{builder}", "--json")
    problems = json.loads(out)["problems"]
    assert code == 1
    assert (module, attribute) in {(p["module"], p["attribute"]) for p in problems}, problems
    assert all(p["fix"] for p in problems)


@pytest.mark.parametrize(
    "args, words",
    [
        (["check", "torchvision:resnet_nope"], "no model builder named"),
        (["check", "no/such/file.py:build"], "does not exist"),
        (["check", "torchvision:resnet18", "--input", "2x3xbig"], "cannot read the input spec"),
        (["sizes", "torchvision:resnet_nope"], "no model builder named"),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_2(capsys, args, words):
    _assert_exit_2(capsys, args, words)


@pytest.mark.parametrize(
    "builder, words",
    [
        ("raises", "raised ValueError: no config file"),
        ("not_a_model", "returned a dict, not a torch.nn.Module"),
    ],
)
@pytest.mark.parametrize("command", ["check", "sizes"])
def test_a_builder_that_fails_exits_2(capsys, seed_spec, command, builder, words):
    _assert_exit_2(capsys, [command, f"{seed_spec}:{builder}"], words)


def _assert_exit_2(capsys, args, words):
    code, out, err = _run(capsys, *args)
    assert code == 2 and out == ""
    assert words in " ".join(err.split()) and "Traceback" not in err


def test_sizes_exit_codes_and_answers(capsys, seed_spec):
    code, out, _ = _run(capsys, "sizes", "torchvision:vit_b_16")
    assert code == 0 and "accepts exactly 224x224" in " ".join(out.split())
    code, out, _ = _run(capsys, "sizes", "torchvision:alexnet", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["summary"] == "any size >= 63" and doc["minimum"] == 63
    code, out, _ = _run(capsys, "sizes", f"{seed_spec}:broken", "--input", "1x3x8x8")
    assert code == 1 and "no probed size is accepted" in " ".join(out.split())
