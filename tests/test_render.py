"""Golden renders: every report type through the one dispatch point, at a fixed width of 100 columns."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headfit.adapt import AdaptReport
from headfit.check import CheckReport
from headfit.diagnosis import Cause, Diagnosis, Location, Problem
from headfit.render import render
from headfit.saved import AdaptRun
from headfit.sizes import SizeAnswer
from headfit.trace import ModuleCall, TraceResult
from headfit.verify import Verification
from headfit.weights import LoadReport, SkippedTensor
from render_support import rendered

FIX = "model.head.classification_head.num_classes = 2"


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def fcos_diagnosis(prefix: str = "model") -> Diagnosis:
    return Diagnosis(
        code="HF101",
        category="view_size_mismatch",
        error_type="RuntimeError",
        message="shape '[2, -1, 91, 32, 40]' is invalid for input of size 5120",
        summary="the classification head's `num_classes` says 91 but its conv emits 2 channels per location",
        facts=["5,120 / (2*32*40) = 2 channels per location"],
        causes=[
            Cause(
                "`num_classes` still says 91",
                0.9,
                "head.classification_head",
                "num_classes",
                FIX.replace("model", prefix),
            ),
            Cause(
                "the conv was sized wrong",
                0.3,
                "head.classification_head.cls_logits",
                None,
                f"{prefix}.head.classification_head.cls_logits = nn.Conv2d(256, 91, 3, padding=1)",
            ),
        ],
    )


def hf201() -> Problem:
    return Problem(
        "HF201",
        "head.classification_head",
        "`cls_logits` emits 2 channels but `num_classes` is 91",
        "num_classes",
        ["`num_anchors` * `num_classes` = 1 * 91 = 91"],
        FIX,
    )


def test_a_diagnosis_puts_the_location_on_the_arrow_and_the_error_in_a_note():
    diagnosis = fcos_diagnosis("detector")
    diagnosis.location = Location(
        "head.classification_head",
        "FCOSClassificationHead",
        "/site-packages/torchvision/models/detection/fcos.py",
        192,
        "cls_logits = cls_logits.view(N, -1, self.num_classes, H, W)",
    )
    diagnosis.user_location = Location(None, None, "train.py", 38, "losses = detector(images, targets)")
    assert rendered(diagnosis) == golden(
        """
        error[HF101]: the classification head's `num_classes` says 91 but its conv emits 2 channels per
        location
          --> module `head.classification_head` (FCOSClassificationHead) at
        /site-packages/torchvision/models/detection/fcos.py:192
           192 | cls_logits = cls_logits.view(N, -1, self.num_classes, H, W)
          ::: called from train.py:38
            38 | losses = detector(images, targets)
          = raised: RuntimeError: shape '[2, -1, 91, 32, 40]' is invalid for input of size 5120
          = note: 5,120 / (2*32*40) = 2 channels per location
          cause 1 (90%): `num_classes` still says 91 (`head.classification_head`.`num_classes`)
            help: detector.head.classification_head.num_classes = 2
          cause 2 (30%): the conv was sized wrong (`head.classification_head.cls_logits`)
            help: detector.head.classification_head.cls_logits = nn.Conv2d(256, 91, 3, padding=1)
        """
    )


def test_an_unrecognised_error_is_a_note():
    diagnosis = Diagnosis(
        None, None, "ValueError", "bad [bold]value[/]", "headfit does not recognise this error"
    )
    diagnosis.reason = "no rule matches"
    assert rendered(diagnosis) == golden(
        """
        note: headfit does not recognise this error
          = no rule matches
          = message: bad [bold]value[/]
        """
    )


def test_a_problem():
    assert rendered(hf201()) == golden(
        """
        error[HF201]: `cls_logits` emits 2 channels but `num_classes` is 91
          --> `head.classification_head`.`num_classes`
          = note: `num_anchors` * `num_classes` = 1 * 91 = 91
          help: model.head.classification_head.num_classes = 2
        """
    )


def broken_fcos_report() -> CheckReport:
    """Lint's HF201, the trace's HF240 and the message's diagnosis, all naming one culprit and fix."""
    hf240 = Problem(
        "HF240",
        "head.classification_head",
        "the shape trace raised in `head.classification_head`",
        "num_classes",
        [
            "RuntimeError: shape '[2, -1, 91, 32, 40]' is invalid for input of size 5120",
            "most likely: `cls_logits` emits 2 channels but `num_classes` is 91",
        ],
        FIX,
    )
    calls = [
        ModuleCall("", "FCOS", [[3, 64, 64]], [], 1000, False),
        ModuleCall("backbone", "BackboneWithFPN", [[1, 3, 64, 64]], [[1, 256, 8, 8]], 900, True),
        ModuleCall("head.classification_head", "FCOSClassificationHead", [[1, 256, 8, 8]], [], 100, False),
    ]
    trace = TraceResult(False, calls=calls, stopped_at="head.classification_head", error=RuntimeError("x"))
    report = CheckReport(
        "broken.py:fcos", "torchvision-retinanet-fcos", ["[3x64x64]"], [hf201(), hf240], trace
    )
    report.diagnosis = fcos_diagnosis()
    return report


def test_a_check_report_prints_each_fix_once():
    report = broken_fcos_report()
    assert rendered(report) == golden(
        """
        broken.py:fcos at [3x64x64]
        module                   ┃ type                   ┃ input     ┃ output    ┃ params
        ━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━
        <model>                  │ FCOS                   │ 3x64x64   │ raised    │  1,000
        backbone                 │ BackboneWithFPN        │ 1x3x64x64 │ 1x256x8x8 │    900
        head.classification_head │ FCOSClassificationHead │ 1x256x8x8 │ raised    │    100

        error[HF201]: `cls_logits` emits 2 channels but `num_classes` is 91
          --> `head.classification_head`.`num_classes`
          = note: `num_anchors` * `num_classes` = 1 * 91 = 91
          = note: HF240: the shape trace raised in `head.classification_head`
          = note: RuntimeError: shape '[2, -1, 91, 32, 40]' is invalid for input of size 5120
          help: model.head.classification_head.num_classes = 2

        error[HF101]: the classification head's `num_classes` says 91 but its conv emits 2 channels per
        location
          = raised: RuntimeError: shape '[2, -1, 91, 32, 40]' is invalid for input of size 5120
          = note: 5,120 / (2*32*40) = 2 channels per location
          cause 1 (90%): `num_classes` still says 91 (`head.classification_head`.`num_classes`)
            help: the fix of error[HF201] above
          cause 2 (30%): the conv was sized wrong (`head.classification_head.cls_logits`)
            help: model.head.classification_head.cls_logits = nn.Conv2d(256, 91, 3, padding=1)

        1 problem found in `broken.py:fcos` (torchvision-retinanet-fcos family)
        """
    )
    assert [p.code for p in report.problems] == ["HF201", "HF240"]  # the report itself is unchanged
    assert report.diagnosis.causes[0].fix == FIX


def test_findings_keep_problems_that_differ():
    report = broken_fcos_report()
    report.problems[1].fix = "something else"
    assert [f.code for f in report.findings()] == ["HF201", "HF240", "HF101"]


def test_a_size_answer():
    answer = SizeAnswer(
        "H and W multiples of 32, >= 64",
        True,
        model="torchvision:resnet18",
        notes=["probing stopped after 24 sizes"],
        probes=[(224, 224, True), (225, 225, False)],
    )
    assert rendered(answer) == golden(
        """
        torchvision:resnet18 accepts H and W multiples of 32, >= 64
          = note: probing stopped after 24 sizes
          = probed on meta: 224x224, 225x225 (rejected)
        """
    )


def coco_load() -> LoadReport:
    return LoadReport(
        "coco.pth",
        loaded=["a", "b", "c"],
        skipped=[SkippedTensor("fc.weight", [91, 8], [3, 8])],
        missing=["bn.num_batches_tracked"],
        unexpected=["aux.weight"],
        stripped_prefix="module.",
        entry="model",
        notes=["the checkpoint also holds EMA weights"],
    )


LOAD_TABLE = """
    loaded coco.pth (entry `model`)
    ┏━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
    ┃ outcome    ┃ tensors ┃ detail                                                   ┃
    ┡━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
    │ loaded     │       3 │ stripped prefix `module.`                                │
    │ skipped    │       1 │ shape does not fit the model                             │
    │ missing    │       1 │ only BatchNorm `num_batches_tracked` counters (harmless) │
    │ unexpected │       1 │ aux.weight                                               │
    └────────────┴─────────┴──────────────────────────────────────────────────────────┘
      skipped tensor    checkpoint     model
      fc.weight            [91, 8]    [3, 8]
    note: the checkpoint also holds EMA weights
"""


def test_a_load_report():
    assert rendered(coco_load()) == golden(LOAD_TABLE)


def tiny_adapt_report() -> AdaptReport:
    return AdaptReport(
        "test-tiny",
        3,
        3,
        False,
        ["fc"],
        {"num_classes": 3},
        ["the new `fc` starts from N(0, 0.01)"],
        kept_classes=[4, 5, 6],
        kept_names=["cat", "dog", "bird"],
        verification=Verification(True, ["6 tensors outside the replaced layers are unchanged"], seconds=0.4),
    )


def test_an_adapt_run_says_how_much_is_pretrained():
    run = AdaptRun(
        "torchvision:resnet18",
        coco_load(),
        tiny_adapt_report(),
        pretrained=6,
        tensors=8,
        output=Path("out dir/t.safetensors"),
        sidecar=Path("out dir/t.safetensors.json"),
    )
    assert rendered(run) == golden(LOAD_TABLE) + golden(
        """
        adapted `torchvision:resnet18` for 3 classes (test-tiny)
          replaced `fc`
          set `num_classes` = 3
          note: the new `fc` starts from N(0, 0.01)
          new rows start from pretrained rows 4 (cat), 5 (dog), 6 (bird)
          weights: 6 of 8 tensors come from the checkpoint; the 2 of the new head are new
        verification: ok (0.4 s)
          ✓ 6 tensors outside the replaced layers are unchanged
        wrote out dir/t.safetensors and out dir/t.safetensors.json
          check it: `headfit check 'out dir/t.safetensors'`
        """
    )


def test_a_random_model_is_re_headed_not_adapted_and_its_check_needs_trust():
    run = AdaptRun(
        "helper.py:build",
        None,
        tiny_adapt_report(),
        tensors=8,
        output=Path("t.pt"),
        sidecar=Path("t.pt.json"),
    )
    text = rendered(run)
    assert text.startswith("re-headed `helper.py:build` for 3 classes (test-tiny)\n")
    assert "weights: none loaded (no --weights): all 8 tensors are the builder's random init" in " ".join(
        text.split()
    )
    assert text.endswith("  check it: `headfit check t.pt --trust-code`\n")


@pytest.mark.parametrize("thing", [42, "text", object()])
def test_render_names_what_it_takes(thing):
    with pytest.raises(
        TypeError, match=rf"render\(\) takes a Diagnosis, Problem, CheckReport, .* not {type(thing).__name__}"
    ):
        render(thing)


def test_rendering_a_diagnosis_does_not_import_torch():
    code = (
        "import sys\n"
        "from headfit.diagnosis import Diagnosis\n"
        "from headfit.render import render\n"
        "from rich.console import Console\n"
        "Console(file=open('/dev/null', 'w')).print(render(Diagnosis('HF101', 'c', 'E', 'm', 's')))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
