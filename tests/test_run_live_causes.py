"""Issue 13 live: the live objects decide between the message's hypotheses (``headfit run`` on user
scripts in tests/scripts/, and ``check`` on the trace). Each case's first cause is the producer's fix,
never the rebuild of a pretrained layer."""

from __future__ import annotations

import json
import subprocess

import pytest

from headfit.check import check
from run_support import Case, assert_diagnosed, fix_is, run_cases

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
