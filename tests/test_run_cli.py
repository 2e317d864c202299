"""``headfit run`` on realistic failing user scripts (tests/scripts/), asserted on the diagnosis document.

Every script is run once, as a user would (``headfit run --json PATH script.py``), in subprocesses two
at a time; each test then reads one script's document.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from run_support import (
    SCRIPTS,
    Case,
    as_params,
    assert_diagnosed,
    fix_is,
    run_cases,
    run_headfit,
    selected_cases,
)

CASES = [
    Case(
        "fcos_num_classes",
        "head.classification_head",
        "num_classes",
        fix_is("model.head.classification_head.num_classes = 2"),
    ),
    Case(
        "retinanet_num_classes",
        "head.classification_head",
        "num_classes",
        fix_is("detector.head.classification_head.num_classes = 3"),
    ),
    Case(
        "retinanet_split_sizes",
        "head.classification_head.cls_logits",
        "cls_logits",
        r"Conv2d\(256, (27|9 \* 3)",
    ),
    Case(
        "fasterrcnn_bbox_pred", "roi_heads.box_predictor", "bbox_pred", fix_is("FastRCNNPredictor(1024, 91)")
    ),
    Case("maskrcnn_background", "roi_heads", "label 3", fix_is("headfit.adapt(model, 3)")),
    Case(
        "ssd_num_columns",
        "head.classification_head",
        "num_columns",
        fix_is("model.head.classification_head.num_columns = 4"),
    ),
    Case("vit_384", "", "built for 224x224 images but got image height 384", r"Resize\(\(224, 224\)\)|ViT\(image_size=384"),
    Case("timm_vit_size", "patch_embed", "img_size", r"resize inputs to 224x224|set_input_size\(img_size=\(H, W\)\)"),
    Case("unet_odd_size", "", "`up3` [1, 32, 24, 24] and `skip3` [1, 32, 25, 25]", fix_is("1x3x104x104")),
    Case("resnet50_fc512", "fc", "in_features", fix_is("model.fc = nn.Linear(2048, 10)")),
    Case("resnet_grayscale", "conv1", "in_channels", fix_is("xray = xray.expand(-1, 3, -1, -1)")),
    Case("labels_exceed", "fc", "from 0 to 10", fix_is("model.fc = nn.Linear(512, 11)")),
    Case("boxes_xywh", None, "[50.0, 60.0, 30.0, 40.0]", r"box_convert\(.*xywh"),
    Case(
        "batchnorm_last_batch",
        "1",
        "33 samples in batches of 16",
        fix_is("loader = DataLoader(loader.dataset, batch_size=16, drop_last=True)"),
    ),
    Case(
        "state_dict_module_prefix",
        "",
        "module.",
        fix_is('model.load_state_dict({k.removeprefix("module."): v for k, v in checkpoint.items()})'),
    ),
    Case("missing_flatten", "fc1", "16*5*5", fix_is("torch.flatten(x, 1)")),
    Case("bce_target_size", None, "[8, 1]", fix_is("squeeze(-1), is_positive.float())")),
    Case("multi_target_ce", None, "[6, 1]", fix_is("labels = labels.squeeze(1)")),
    Case(
        "inception_aux",
        None,
        "aux_logits",
        fix_is("criterion(outputs.logits, labels) + 0.4 * criterion(outputs.aux_logits, labels)"),
    ),
    Case("lstm_embedding_index", "embed", "from 0 to 120", fix_is("model.embed = nn.Embedding(121, 32)")),
    Case(
        "squeezenet_linear",
        "classifier.1",
        "feature map",
        fix_is("model.classifier[1] = nn.Conv2d(512, 10, kernel_size=1)"),
    ),
    Case("deeplab_dict_loss", None, "keys ['out', 'aux']", fix_is('criterion(output["out"], mask)')),
    Case("custom_mlp", "0", "in_features", fix_is("model[0] = nn.Linear(2352, 256)")),
    Case(
        "efficientnet_classifier",
        "classifier.1",
        "in_features",
        fix_is("model.classifier[1] = nn.Linear(1280, 10)"),
    ),
    Case(
        "conv_channels",
        "features.2",
        "in_channels",
        fix_is("cnn.features[2] = nn.Conv2d(16, 64, kernel_size=3, padding=1)"),
    ),
    Case("layernorm_width", "norm", "normalized_shape", fix_is("block.norm = nn.LayerNorm(128)")),
    Case(
        "attention_embed_dim",
        "attn",
        "embed_dim",
        fix_is("encoder.attn = nn.MultiheadAttention(96, 4, batch_first=True)"),
    ),
    Case("fasterrcnn_empty_boxes", None, "[0]", fix_is("torch.zeros((0, 4)")),
    Case(
        "detection_collate",
        None,
        "`train_loader` yields (image, target) samples",
        fix_is("collate_fn=lambda batch: tuple(zip(*batch))"),
    ),
    Case("pool_too_small", "7", "1x1", fix_is("transforms.Resize((16, 16))")),  # 16 = 2^4: four 2x2 poolings
]


@pytest.fixture(scope="module")
def documents(request, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    return run_cases(selected_cases(request, CASES, also=("resnet50_fc512",)), tmp_path_factory.mktemp("run"))


# the fast suite's cases: one of each kind (detector head, classifier head, input channels, flatten,
# data, a Sequential, pooling, collate); the traceback test reads resnet50_fc512
FAST = {
    "fcos_num_classes",
    "resnet50_fc512",
    "resnet_grayscale",
    "missing_flatten",
    "boxes_xywh",
    "custom_mlp",
    "pool_too_small",
    "detection_collate",
}


@pytest.mark.parametrize("case", as_params(CASES, FAST))
def test_failing_script_is_diagnosed_from_live_objects(case: Case, documents) -> None:
    proc, doc = documents[case.script]
    assert_diagnosed(case, proc, doc)
    assert "Traceback (most recent call last)" in proc.stderr


def test_the_normal_traceback_comes_first_without_headfit_frames(documents) -> None:
    proc, _ = documents["resnet50_fc512"]
    traceback_part, _, diagnosis_part = proc.stderr.partition("error[")
    assert traceback_part.index("Traceback") < traceback_part.index("resnet50_fc512.py")
    assert "runpy" not in traceback_part and "headfit" not in traceback_part
    assert "model.fc = nn.Linear(2048, 10)" in diagnosis_part


def test_an_error_headfit_cannot_explain_gets_an_honest_note(tmp_path) -> None:
    path = tmp_path / "doc.json"
    proc = run_headfit(SCRIPTS / "not_a_model_error.py", json_path=path)
    assert proc.returncode == 1
    assert "KeyError: 'lr'" in proc.stderr
    assert "headfit does not recognise this error" in proc.stderr
    doc = json.loads(path.read_text())
    assert doc["code"] is None and doc["error"]["type"] == "KeyError"


def test_a_succeeding_script_runs_as_python_would(tmp_path) -> None:
    proc = run_headfit(SCRIPTS / "succeeds.py", "--lr", "0.1", "data dir", cwd=tmp_path)
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
    proc = run_headfit(SCRIPTS / "exits_3.py", json_path=path)
    assert proc.returncode == 3
    assert proc.stdout == "exiting with 3\n" and proc.stderr == ""
    assert not path.exists()


def test_a_missing_script_is_a_usage_error(tmp_path) -> None:
    proc = run_headfit(tmp_path / "nope.py")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_keyboard_interrupt_is_not_diagnosed() -> None:
    proc = run_headfit(SCRIPTS / "interrupted.py")
    assert proc.returncode == 130
    assert "KeyboardInterrupt" in proc.stderr and "error[" not in proc.stderr and "note:" not in proc.stderr
