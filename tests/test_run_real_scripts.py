"""``headfit run`` on failing scripts rebuilt from public threads (tests/scripts/real_*.py).

Each script keeps the user's own structure, names and mistake (its docstring names the thread), made
offline and small. The document must name the culprit module, the attribute or datum, and a fix that
works: each fix below was applied to a copy of its script, which then ran past the failure.
"""

from __future__ import annotations

import subprocess

import pytest

from run_support import Case, assert_diagnosed, fix_is, run_cases

pytestmark = pytest.mark.slow  # the module's fixture runs every script: 369 s here (pytest --durations, -n 2)

CASES = [
    Case(
        "real_resnext_wrapped_fc",
        "Resnext.fc",
        "in_features",
        fix_is("model.Resnext.fc = nn.Linear(2048, 2)"),
    ),
    Case("real_cnn_linear_1050", "out", "in_features", fix_is("cnn.out = nn.Linear(1568, 10)")),
    Case(
        "real_unet_one_channel_stem",
        "encoder1.0",
        "in_channels",
        fix_is("model.encoder1[0] = nn.Conv2d(3, 64, kernel_size=3, padding=1)"),
    ),
    Case(
        "real_skip_sequential",
        "0.2",
        "in_channels",
        fix_is("model[0][2] = nn.Conv2d(19, 16, kernel_size=3, stride=2, padding=1, padding_mode='reflect')"),
    ),
    Case(
        "real_collate_bbox_dict",
        None,
        "`bbox` holds boxes of shape [N, 4] with N = 2, 5",
        fix_is("collate_fn=lambda batch: {key: [sample[key] for sample in batch] for key in batch[0]})"),
    ),
    Case("real_timm_vit_448", "patch_embed", "img_size", r"set_input_size|img_size=448"),
    Case(
        "real_visdrone_flat_box",
        None,
        "zero width or height",
        fix_is('keep = (targets[0]["boxes"][:, 2:] > targets[0]["boxes"][:, :2]).all(1)'),
    ),
    Case(
        "real_retinanet_coco_weights",
        "head.classification_head.cls_logits",
        "819 = 9*91",
        fix_is("state = torch.load(path); state = {k: v for k, v in state.items() if not k.startswith(")
        + r".*"
        + fix_is("backbone.load_state_dict(state, strict=False)"),
    ),
    Case(
        "real_convnet_view_batch",
        "fc",
        "16,384 features",
        fix_is("X = X.view(X.size(0), -1)  # in ConvNet.forward; and model.fc = nn.Linear(16384, 3)"),
    ),
    Case(
        "real_fasterrcnn_coco_num_classes",
        "roi_heads.box_predictor.cls_score",
        "91",
        fix_is("state_dict = {k: v for k, v in state_dict.items() if not k.startswith(")
        + r".*"
        + fix_is("model.load_state_dict(state_dict, strict=False)"),
    ),
    Case("real_fasterrcnn_xywh", None, "read as x, y, w, h", r"box_convert\(.*xywh"),
]


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    return run_cases(CASES, tmp_path_factory.mktemp("run_real"))


@pytest.mark.parametrize("case", CASES, ids=[c.script for c in CASES])
def test_real_script_is_diagnosed_from_live_objects(case: Case, documents) -> None:
    proc, doc = documents[case.script]
    assert_diagnosed(case, proc, doc)


def test_a_flat_box_among_valid_ones_is_not_called_xywh(documents) -> None:
    _, doc = documents["real_visdrone_flat_box"]
    assert "box_convert" not in doc["causes"][0]["fix"]
    assert not any("x, y, w, h" in c["summary"] for c in doc["causes"][:2]), doc["causes"][:2]
