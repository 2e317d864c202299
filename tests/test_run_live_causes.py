"""Issue 13 live: the live objects decide between the message's hypotheses (``headfit run`` on user
scripts in tests/scripts/, and ``check`` on the trace). Each case's first cause is the producer's fix,
never the rebuild of a pretrained layer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from headfit.check import check
from run_support import Case, assert_diagnosed, fix_is, raised, run_cases

CASES = [
    Case(
        "channels_last_numpy",
        "conv1",
        "channels-last",
        fix_is("batch = batch.permute(0, 3, 1, 2)"),
    ),
    Case("single_image_no_batch", "bn1", "without its batch dim", fix_is("img_tensor = img_tensor.unsqueeze(0)")),
    Case(
        "detector_bare_image",
        "transform",
        "not a list of images",
        fix_is("frame = [frame.permute(2, 0, 1)]"),
    ),
    Case(
        "fasterrcnn_forgot_background",
        "roi_heads.box_predictor",
        "counts the background too",
        fix_is("build it with num_classes=3"),
    ),
    Case(
        "keypoints_no_instance_dim",
        "roi_heads.keypoint_predictor",
        "without the instance dim",
        fix_is('targets[0]["keypoints"] = targets[0]["keypoints"].unsqueeze(0)'),
    ),
    Case("seg_mask_0_255", None, "0 and 255", fix_is("masks = (masks > 127).long()")),
    Case("seg_mask_rgb", None, "colour", fix_is("masks = palette_to_index(masks)")),
    Case(
        "seg_one_hot_21",
        "classifier.4",
        "has 5 classes",
        fix_is("model.classifier[4] = nn.Conv2d(512, 5, kernel_size=1); and masks = masks.argmax(1)"),
    ),
    Case("timm_head_replaced", "head", "pooling and norm", fix_is("net.reset_classifier(7)")),
    Case(
        "cifar_cnn_bigger_images",
        "fc",
        "cifar_cnn_bigger_images.py:23 `x = x.view(x.size(0), -1)`",
        fix_is("x = torch.nn.functional.adaptive_avg_pool2d(x, (8, 8))"),
    ),
]


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    return run_cases(CASES, tmp_path_factory.mktemp("run_live"))


@pytest.mark.parametrize("case", CASES, ids=[c.script for c in CASES])
def test_the_producer_is_the_first_cause(case: Case, documents) -> None:
    proc, doc = documents[case.script]
    assert_diagnosed(case, proc, doc)


def test_channels_last_is_never_demoted_below_rebuilding_the_stem(documents) -> None:
    _, doc = documents["channels_last_numpy"]
    summaries = [c["summary"] for c in doc["causes"]]
    rebuild = next(i for i, s in enumerate(summaries) if "rebuild" in s)
    assert rebuild > 0 and "loses its weights" in summaries[rebuild]
    assert not any(c["fix"] and "nn.Conv2d(96" in c["fix"] for c in doc["causes"][:1])


def test_an_image_without_batch_is_not_a_batchnorm_width(documents) -> None:
    _, doc = documents["single_image_no_batch"]
    assert not any(c["fix"] and "BatchNorm2d(56)" in c["fix"] for c in doc["causes"]), doc["causes"]


def test_a_bare_detector_image_is_not_a_grayscale_image(documents) -> None:
    _, doc = documents["detector_bare_image"]
    said = json.dumps(doc["causes"])
    assert "grayscale" not in said and "batch sizes differ" not in said


def test_the_flatten_is_judged_and_the_resize_of_the_linear_comes_last(documents) -> None:
    _, doc = documents["cifar_cnn_bigger_images"]
    assert any("[4, 64, 16, 16] feature map" in f and "64 x 8 x 8" in f for f in doc["facts"]), doc["facts"]
    rebuild = [c for c in doc["causes"] if c["fix"] == "model.fc = nn.Linear(16384, 10)"]
    assert rebuild and "discards its pretrained weights" in rebuild[0]["summary"], doc["causes"]
    assert rebuild[0]["confidence"] < doc["causes"][0]["confidence"] and "pool" in doc["causes"][0]["fix"]


def test_the_pooling_fix_makes_the_script_run(tmp_path) -> None:
    from run_support import SCRIPTS

    source = (SCRIPTS / "cifar_cnn_bigger_images.py").read_text()
    fixed = source.replace(
        "        x = x.view(x.size(0), -1)",
        "        x = torch.nn.functional.adaptive_avg_pool2d(x, (8, 8))\n        x = x.view(x.size(0), -1)",
    )
    script = tmp_path / "fixed.py"
    script.write_text(fixed + "\nassert logits.shape == (4, 10)\n")
    assert subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120).returncode == 0


def test_a_forgotten_background_never_reads_valid_labels_1_to_0(documents) -> None:
    _, doc = documents["fasterrcnn_forgot_background"]
    said = json.dumps(doc)
    assert "1..0" not in said and "target = target - 1" not in said
    assert doc["causes"][0]["module"] == "roi_heads.box_predictor"


@pytest.mark.parametrize("script", ["seg_mask_0_255", "seg_mask_rgb"])
def test_an_image_encoded_mask_does_not_rebuild_the_class_conv(script: str, documents) -> None:
    _, doc = documents[script]
    assert "Conv2d" not in (doc["causes"][0]["fix"] or "") and "adapt" not in (doc["causes"][0]["fix"] or "")
    assert not any(c["module"] == "classifier.4" for c in doc["causes"]), doc["causes"]


def test_check_flags_a_timm_head_replaced_wholesale() -> None:
    import timm
    from torch import nn

    model = timm.create_model("convnext_atto", pretrained=False)
    model.head = nn.Linear(320, 7)
    problem = next(p for p in check(model, "2x3x64x64").problems if p.code == "HF236")
    assert (problem.module, problem.attribute) == ("head", "fc")
    assert problem.fix.startswith("model.reset_classifier(7)")
    healthy = timm.create_model("convnext_atto", pretrained=False, num_classes=7)
    assert not [p for p in check(healthy, "2x3x64x64").problems if p.code == "HF236"]


@pytest.mark.parametrize(
    ("spec", "fix"),
    [
        ("2x224x224x3", "x = x.permute(0, 3, 1, 2)"),
        ("224x224x3", "x = x.permute(2, 0, 1).unsqueeze(0)"),
    ],
)
def test_check_names_the_permute_for_a_channels_last_input(spec: str, fix: str) -> None:
    from torchvision.models import resnet18

    report = check(resnet18(weights=None), spec)
    trace_problem = next(p for p in report.problems if p.code == "HF240")
    assert trace_problem.fix.startswith(fix), trace_problem
    assert report.diagnosis.causes[0].fix.startswith(fix)
    assert "channels-last" in report.diagnosis.causes[0].summary


def test_the_minimum_input_for_a_window_closes_over_the_whole_chain() -> None:
    """Strided convs, then a 3x3 pooling without padding: the minimum is the chain's, not 3 x the stride."""
    import torch
    from torch import nn

    from headfit.live import diagnose_exception

    encoder = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.MaxPool2d(3),
    )
    thumbnails = torch.rand(2, 3, 12, 12)
    d = diagnose_exception(raised(lambda: encoder(thumbnails)))
    top = d.causes[0]
    assert (top.module, top.attribute) == ("5", "kernel_size"), d.causes
    side = int(top.summary.rsplit("at least ", 1)[1].split("x")[0])
    assert f"transforms.Resize(({side}, {side}))" in top.fix
    with torch.no_grad():
        assert encoder(torch.rand(1, 3, side, side)).shape[-1] >= 1  # the suggested size runs
        with pytest.raises(RuntimeError):
            encoder(torch.rand(1, 3, side - 1, side - 1))  # one pixel less fails
    assert any(f"{side}x{side} runs, {side - 1}x{side - 1} fails" in f for f in d.facts)
