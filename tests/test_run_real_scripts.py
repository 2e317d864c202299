"""``headfit run`` on failing scripts rebuilt from public threads (tests/scripts/real_*.py).

Each script keeps the user's own structure, names and mistake (its docstring names the thread), made
offline and small. The document must name the culprit module, the attribute or datum, and a fix that
works: each fix below was applied to a copy of its script, which then ran past the failure.
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
        "real_resnext_wrapped_fc", "Resnext.fc", "in_features", _fix("model.Resnext.fc = nn.Linear(2048, 2)")
    ),
    Case("real_cnn_linear_1050", "out", "in_features", _fix("cnn.out = nn.Linear(1568, 10)")),
    Case(
        "real_unet_one_channel_stem",
        "encoder1.0",
        "in_channels",
        _fix("model.encoder1[0] = nn.Conv2d(3, 64, kernel_size=3, padding=1)"),
    ),
    Case(
        "real_skip_sequential",
        "0.2",
        "in_channels",
        _fix("model[0][2] = nn.Conv2d(19, 16, kernel_size=3, stride=2, padding=1)"),
    ),
    Case(
        "real_collate_bbox_dict",
        None,
        "`bbox` holds boxes of shape [N, 4] with N = 2, 5",
        _fix("collate_fn=lambda batch: {key: [sample[key] for sample in batch] for key in batch[0]})"),
    ),
    Case("real_timm_vit_448", "patch_embed", "img_size", r"set_input_size|img_size=448"),
    Case(
        "real_visdrone_flat_box",
        None,
        "zero width or height",
        _fix('keep = (targets[0]["boxes"][:, 2:] > targets[0]["boxes"][:, :2]).all(1)'),
    ),
    Case(
        "real_retinanet_coco_weights",
        "head.classification_head.cls_logits",
        "819 = 9*91",
        _fix("state = torch.load(path); state = {k: v for k, v in state.items() if not k.startswith(")
        + r".*"
        + _fix("backbone.load_state_dict(state, strict=False)"),
    ),
    Case(
        "real_convnet_view_batch",
        "fc",
        "16,384 features",
        _fix("X = X.view(X.size(0), -1)  # in ConvNet.forward; and model.fc = nn.Linear(16384, 3)"),
    ),
    Case(
        "real_fasterrcnn_coco_num_classes",
        "roi_heads.box_predictor.cls_score",
        "91",
        _fix("state_dict = {k: v for k, v in state_dict.items() if not k.startswith(")
        + r".*"
        + _fix("model.load_state_dict(state_dict, strict=False)"),
    ),
    Case("real_fasterrcnn_xywh", None, "read as x, y, w, h", r"box_convert\(.*xywh"),
]


def _run(script: Path, json_path: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "headfit", "run", "--json", str(json_path), str(script)]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    out = tmp_path_factory.mktemp("run_real")

    def run_one(case: Case):
        path = out / f"{case.script}.json"
        proc = _run(SCRIPTS / f"{case.script}.py", path)
        return case.script, (proc, json.loads(path.read_text()) if path.exists() else {})

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run_one, CASES))


@pytest.mark.parametrize("case", CASES, ids=[c.script for c in CASES])
def test_real_script_is_diagnosed_from_live_objects(case: Case, documents) -> None:
    proc, doc = documents[case.script]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert doc.get("code"), f"not recognised: {doc}"
    top = doc["causes"][0]
    if case.module is not None:
        located = {doc["location"]["module"] if doc["location"] else None, top["module"]}
        assert case.module in located, (located, doc)
    said = json.dumps([doc["summary"], doc["facts"], top])
    assert case.datum in said, said
    assert re.search(case.fix, top["fix"] or ""), (top, doc["causes"][1:3])


def test_a_flat_box_among_valid_ones_is_not_called_xywh(documents) -> None:
    _, doc = documents["real_visdrone_flat_box"]
    assert "box_convert" not in doc["causes"][0]["fix"]
    assert not any("x, y, w, h" in c["summary"] for c in doc["causes"][:2]), doc["causes"][:2]
