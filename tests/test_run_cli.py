"""``headfit run`` on realistic failing user scripts (tests/scripts/), asserted on the diagnosis document.

Every script is run once, as a user would (``headfit run --json PATH script.py``), in subprocesses two
at a time; each test then reads one script's document.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"


@dataclass(frozen=True)
class Case:
    script: str
    module: str | None  # the failing module's path in the user's model (None: the failure is in the data)
    datum: str  # an attribute, value or tensor the diagnosis must name (in facts, summary or first cause)
    fix: str  # a regular expression the first cause's fix must match


def _fix(text: str) -> str:
    return re.escape(text)


CASES = [
    Case(
        "fcos_num_classes",
        "head.classification_head",
        "num_classes",
        _fix("model.head.classification_head.num_classes = 2"),
    ),
    Case(
        "retinanet_num_classes",
        "head.classification_head",
        "num_classes",
        _fix("detector.head.classification_head.num_classes = 3"),
    ),
    Case(
        "retinanet_split_sizes",
        "head.classification_head.cls_logits",
        "cls_logits",
        r"Conv2d\(256, (27|9 \* 3)",
    ),
    Case("fasterrcnn_bbox_pred", "roi_heads.box_predictor", "bbox_pred", _fix("FastRCNNPredictor(1024, 91)")),
    Case("maskrcnn_background", "roi_heads", "label 3", _fix("headfit.adapt(model, 3)")),
    Case(
        "ssd_num_columns",
        "head.classification_head",
        "num_columns",
        _fix("model.head.classification_head.num_columns = 4"),
    ),
    Case("vit_384", "", "224", r"224|image_size=384"),
    Case("timm_vit_size", "patch_embed", "img_size", r"224|img_size=256|set_input_size"),
    Case("unet_odd_size", "", "`up3` [1, 32, 24, 24] and `skip3` [1, 32, 25, 25]", _fix("1x3x104x104")),
    Case("resnet50_fc512", "fc", "in_features", _fix("model.fc = nn.Linear(2048, 10)")),
    Case("resnet_grayscale", "conv1", "in_channels", _fix("xray = xray.expand(-1, 3, -1, -1)")),
    Case("labels_exceed", "fc", "from 0 to 10", _fix("model.fc = nn.Linear(512, 11)")),
    Case("boxes_xywh", None, "[50.0, 60.0, 30.0, 40.0]", r"box_convert\(.*xywh"),
    Case(
        "batchnorm_last_batch",
        "1",
        "33 samples in batches of 16",
        _fix("loader = DataLoader(loader.dataset, batch_size=16, drop_last=True)"),
    ),
    Case(
        "state_dict_module_prefix",
        "",
        "module.",
        _fix('model.load_state_dict({k.removeprefix("module."): v for k, v in checkpoint.items()})'),
    ),
    Case("missing_flatten", "fc1", "16*5*5", _fix("torch.flatten(x, 1)")),
    Case("bce_target_size", None, "[8, 1]", _fix("squeeze(-1), is_positive.float())")),
    Case("multi_target_ce", None, "[6, 1]", _fix("labels = labels.squeeze(1)")),
    Case(
        "inception_aux",
        None,
        "aux_logits",
        _fix("criterion(outputs.logits, labels) + 0.4 * criterion(outputs.aux_logits, labels)"),
    ),
    Case("lstm_embedding_index", "embed", "from 0 to 120", _fix("model.embed = nn.Embedding(121, 32)")),
    Case(
        "squeezenet_linear",
        "classifier.1",
        "feature map",
        _fix("model.classifier[1] = nn.Conv2d(512, 10, kernel_size=1)"),
    ),
    Case("deeplab_dict_loss", None, "keys ['out', 'aux']", _fix('criterion(output["out"], mask)')),
    Case("custom_mlp", "0", "in_features", _fix("model[0] = nn.Linear(2352, 256)")),
    Case(
        "efficientnet_classifier",
        "classifier.1",
        "in_features",
        _fix("model.classifier[1] = nn.Linear(1280, 10)"),
    ),
    Case(
        "conv_channels",
        "features.2",
        "in_channels",
        _fix("cnn.features[2] = nn.Conv2d(16, 64, kernel_size=3, padding=1)"),
    ),
    Case("layernorm_width", "norm", "normalized_shape", _fix("block.norm = nn.LayerNorm(128)")),
    Case(
        "attention_embed_dim",
        "attn",
        "embed_dim",
        _fix("encoder.attn = nn.MultiheadAttention(96, 4, batch_first=True)"),
    ),
    Case("fasterrcnn_empty_boxes", None, "[0]", _fix("torch.zeros((0, 4)")),
    Case(
        "detection_collate",
        None,
        "`train_loader` yields (image, target) samples",
        _fix("collate_fn=lambda batch: tuple(zip(*batch))"),
    ),
    Case("pool_too_small", "7", "1x1", r"larger input|Resize"),
]


def _run(
    script: Path, *args: str, json_path: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "headfit", "run"]
    if json_path is not None:
        command += ["--json", str(json_path)]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*command, str(script), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    out = tmp_path_factory.mktemp("run")

    def run_one(case: Case):
        path = out / f"{case.script}.json"
        proc = _run(SCRIPTS / f"{case.script}.py", json_path=path)
        return case.script, (proc, json.loads(path.read_text()) if path.exists() else {})

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run_one, CASES))


@pytest.mark.parametrize("case", CASES, ids=[c.script for c in CASES])
def test_failing_script_is_diagnosed_from_live_objects(case: Case, documents) -> None:
    proc, doc = documents[case.script]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback (most recent call last)" in proc.stderr
    assert doc.get("code"), f"not recognised: {doc}"
    top = doc["causes"][0]
    if case.module is not None:
        located = {doc["location"]["module"] if doc["location"] else None, top["module"]}
        assert case.module in located, (located, doc)
    said = json.dumps([doc["summary"], doc["facts"], top])
    assert case.datum in said, said
    assert re.search(case.fix, top["fix"] or ""), (top, doc["causes"][1:3])


def test_the_normal_traceback_comes_first_without_headfit_frames(documents) -> None:
    proc, _ = documents["resnet50_fc512"]
    traceback_part, _, diagnosis_part = proc.stderr.partition("error[")
    assert traceback_part.index("Traceback") < traceback_part.index("resnet50_fc512.py")
    assert "runpy" not in traceback_part and "headfit" not in traceback_part
    assert "model.fc = nn.Linear(2048, 10)" in diagnosis_part


def test_an_error_headfit_cannot_explain_gets_an_honest_note(tmp_path) -> None:
    path = tmp_path / "doc.json"
    proc = _run(SCRIPTS / "not_a_model_error.py", json_path=path)
    assert proc.returncode == 1
    assert "KeyError: 'lr'" in proc.stderr
    assert "headfit does not recognise this error" in proc.stderr
    doc = json.loads(path.read_text())
    assert doc["code"] is None and doc["error"]["type"] == "KeyError"


def test_a_succeeding_script_runs_as_python_would(tmp_path) -> None:
    proc = _run(SCRIPTS / "succeeds.py", "--lr", "0.1", "data dir", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "argv: ['--lr', '0.1', 'data dir']",
        "name: __main__",
        "path0: True",
        "helper: 42",
        "pickled: 1",
    ]
    assert proc.stderr == "to stderr\n"


def test_system_exit_code_passes_through(tmp_path) -> None:
    path = tmp_path / "doc.json"
    proc = _run(SCRIPTS / "exits_3.py", json_path=path)
    assert proc.returncode == 3
    assert proc.stdout == "exiting with 3\n" and proc.stderr == ""
    assert not path.exists()


def test_a_missing_script_is_a_usage_error(tmp_path) -> None:
    proc = _run(tmp_path / "nope.py")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_keyboard_interrupt_is_not_diagnosed() -> None:
    proc = _run(SCRIPTS / "interrupted.py")
    assert proc.returncode == 130
    assert "KeyboardInterrupt" in proc.stderr and "error[" not in proc.stderr and "note:" not in proc.stderr
