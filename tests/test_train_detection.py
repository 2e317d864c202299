"""`headfit train` on detection data: the run directory, exact resume after kill -9, every builder,
the re-heading that keeps known classes' rows, the pre-flight stops and every bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from headfit.cli import cli
from headfit.datasets import synth
from headfit.train.prepare import TrainOptions, prepare
from headfit.train.state import STATE_FILE
from tiny_models import one_thread

OWN = str(Path(__file__).parent / "data" / "own_fcos.py") + ":build"
TINY = "headfit.train.tiny:tiny_fcos"
SMALL = ["--imgsz", "96", "--batch", "4", "--workers", "0", "--lr", "0.02"]


@pytest.fixture(autouse=True)
def torch_on_one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    synth(folder, images=20, classes=2, size=96, seed=1)
    return folder


def train(*args: str, project: Path) -> tuple[int, str]:
    where = [] if "--resume" in args else ["--project", str(project)]
    result = CliRunner().invoke(cli, ["train", *args, *where], catch_exceptions=False)
    return result.exit_code, result.stdout if "--json" in args else result.output


@pytest.mark.slow  # 39 s here (pytest --durations, -n 2)
def test_a_run_directory_people_can_read(shapes, tmp_path):
    code, out = train(OWN, "--data", str(shapes), "--epochs", "2", *SMALL, project=tmp_path)
    assert code == 0, out
    run = tmp_path / "exp"
    assert "lr" in out and "0.02" in out and "circle (id 1)" in out and "pre-flight" in out
    assert "epoch 1/2  batch" in out  # plain lines, not a TTY
    args = json.loads((run / "args.json").read_text())
    assert args["world_size"] == 1 and args["classes"]["names"] == ["circle", "square"]
    assert args["model"].endswith("own_fcos.py:build") and args["data_fingerprint"]["train"].startswith(
        "sha256:"
    )
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == [
        "epoch", "lr", "classification", "bbox_regression", "bbox_ctrness", "train_loss",
        "val_AP", "val_AP50", "val_AP75", "seconds",
    ]  # fmt: skip
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for name in ("last", "best"):
        assert (run / f"{name}.safetensors").is_file() and (run / f"{name}.safetensors.json").is_file()
    assert sorted(p.name for p in (run / "plots").iterdir()) == [
        "loss.png",
        "mAP.png",
        "pr_curves.png",
        "val_grid.png",
    ]
    assert torch.load(run / STATE_FILE, weights_only=True)["position"][0] == 2

    # the saved best model gives its epoch's val_AP through the same engine `evaluate` uses
    from headfit.checkpoint import load_detector
    from headfit.evaluation import evaluate_detections
    from headfit.evaluation.inference import detect
    from headfit.train.prepare import read_data

    loaded = load_detector(run / "best.safetensors", trust_code=True)
    _, val, _ = read_data(shapes, None)
    report = evaluate_detections(val, detect(loaded.model, val))
    best = max(rows, key=lambda r: float(r["val_AP"]))
    assert report.AP == pytest.approx(float(best["val_AP"]), abs=1e-5)
    assert loaded.classes.names == ["circle", "square"] and loaded.image_size == 96

    # a run's checkpoint is a MODEL too: fine-tuning it again keeps every row its classes have
    best = str(run / "best.safetensors")
    code, out = train(
        best, "--data", str(shapes), "--epochs", "1", *SMALL, "--trust-code", "--json", project=tmp_path
    )
    assert code == 0, out
    choices = {c["topic"]: c["value"] for c in json.loads(out)["plan"]["choices"]}
    assert (
        choices["kept rows"]
        == "`circle` from pretrained row 0 (circle), `square` from pretrained row 1 (square)"
    )
    assert (tmp_path / "exp2" / "metrics.csv").is_file()  # never overwritten


def _cli(*args: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", "headfit", "train", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow  # 286 s here (pytest --durations, -n 2)
def test_kill_9_then_resume_gives_the_uninterrupted_weights_and_ema(shapes, tmp_path):
    common = [
        OWN,
        "--data",
        str(shapes),
        "--epochs",
        "3",
        *SMALL,
        "--workers",
        "1",
        "--save-every",
        "0",
        "--ema",
    ]
    whole = subprocess.run(
        _cli(*common, "--project", str(tmp_path), "--name", "whole", cwd=tmp_path),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert whole.returncode == 0, whole.stderr

    victim = subprocess.Popen(
        _cli(*common, "--project", str(tmp_path), "--name", "killed", cwd=tmp_path),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = tmp_path / "killed" / STATE_FILE
    killed_at = None
    deadline = time.monotonic() + 300
    while victim.poll() is None and time.monotonic() < deadline:
        if state.is_file():
            epoch, batch, _ = torch.load(state, weights_only=True)["position"]
            if epoch >= 1 and batch >= 1:  # inside epoch 2 or later, not at an epoch's end
                victim.send_signal(signal.SIGKILL)
                killed_at = (epoch, batch)
                break
        time.sleep(0.02)
    victim.wait()
    assert killed_at is not None, "the run finished before it could be killed mid-epoch"
    assert victim.returncode == -signal.SIGKILL

    resumed = subprocess.run(
        _cli("--resume", str(tmp_path / "killed"), "--trust-code", cwd=tmp_path),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a, b = (
        load_file(tmp_path / "whole" / "last.safetensors"),
        load_file(tmp_path / "killed" / "last.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = list(csv.DictReader((tmp_path / "killed" / "metrics.csv").open()))
    uncut = list(csv.DictReader((tmp_path / "whole" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for row, same in zip(rows, uncut, strict=True):  # losses, lr and metrics too, not just the weights
        assert {k: v for k, v in row.items() if k != "seconds"} == {
            k: v for k, v in same.items() if k != "seconds"
        }


@pytest.mark.slow  # 79 s here (pytest --durations, -n 2)
def test_ctrl_c_saves_at_the_end_of_the_step_and_says_how_to_resume(shapes, tmp_path):
    command = _cli(
        OWN, "--data", str(shapes), "--epochs", "3", *SMALL, "--project", str(tmp_path), cwd=tmp_path
    )
    running = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "exp" / "metrics.csv"
    deadline = time.monotonic() + 300
    while not metrics.is_file() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first epoch is done: the second one is running
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=300)
    assert running.returncode == 130, err
    assert "interrupted at epoch 2" in err and f"--resume {tmp_path / 'exp'}" in " ".join(err.split())
    epoch, batch, _ = torch.load(tmp_path / "exp" / STATE_FILE, weights_only=True)["position"]
    assert epoch == 1 and batch >= 1


@pytest.mark.slow  # 28 s here (pytest --durations, -n 2)
def test_resume_extends_a_finished_run_and_refuses_changed_data(shapes, tmp_path):
    data = tmp_path / "data"
    synth(data, images=12, classes=2, size=96, seed=2)
    assert train(OWN, "--data", str(data), "--epochs", "1", *SMALL, project=tmp_path)[0] == 0
    run = tmp_path / "exp"
    code, out = train("--resume", str(run), project=tmp_path)
    assert code == 2 and "--trust-code" in out  # resuming imports the run's own builder file
    code, out = train("--resume", str(run), "--trust-code", project=tmp_path)
    assert code == 2 and "finished all 1 of its epochs" in out and "--epochs" in out
    code, out = train("--resume", str(run), "--epochs", "2", "--trust-code", project=tmp_path)
    assert code == 0, out
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1", "2"]

    document = json.loads((data / "train.json").read_text())
    document["annotations"] = document["annotations"][1:]
    (data / "train.json").write_text(json.dumps(document))
    code, out = train("--resume", str(run), "--epochs", "3", "--trust-code", project=tmp_path)
    assert code == 2 and "train data changed" in out and "fingerprint" in out


def test_resume_of_a_folder_that_is_no_run(tmp_path):
    code, out = train("--resume", str(tmp_path), project=tmp_path)
    assert code == 2 and "is not a `headfit train` run" in out and "args.json" in out


def test_a_nan_stops_with_hf401_and_the_batch(shapes, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "train",
            OWN,
            "--data",
            str(shapes),
            "--epochs",
            "2",
            "--imgsz",
            "96",
            "--workers",
            "0",
            "--lr",
            "1e6",
            "--clip",
            "0",
            "--json",
            "--project",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    diagnosis = document["diagnosis"]
    assert diagnosis["code"] == "HF401" and "non-finite" in diagnosis["summary"]
    assert any(f.startswith("image ") and "box(es) as trained" in f for f in diagnosis["facts"])
    assert any("--lr" in (c["fix"] or "") for c in diagnosis["causes"])


def test_data_problems_stop_the_run_and_allow_drop_lists_them(tmp_path):
    data = tmp_path / "data"
    synth(data, images=12, classes=2, size=96, seed=3)
    document = json.loads((data / "train.json").read_text())
    document["annotations"][0]["bbox"] = [50, 50, -20, 10]  # negative width
    (data / "train.json").write_text(json.dumps(document))
    code, out = train(OWN, "--data", str(data), "--epochs", "1", *SMALL, project=tmp_path)
    assert code == 1 and "problem(s)" in out and "--allow-drop" in out
    bad = document["annotations"][0]["image_id"]
    code, out = train(OWN, "--data", str(data), "--epochs", "1", *SMALL, "--allow-drop", project=tmp_path)
    assert code == 0, out
    assert "left out: " in out and f"image {bad}" in out
    assert json.loads((tmp_path / "exp" / "args.json").read_text())["dropped"][0]["image_id"] == bad


def test_zero_usable_images(tmp_path):
    data = tmp_path / "data"
    synth(data, images=4, classes=1, size=64)
    for image in (data / "images").iterdir():
        image.write_bytes(b"not a png")
    code, out = train(OWN, "--data", str(data), "--allow-drop", project=tmp_path)
    assert code == 2 and "no usable image" in out


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("torchvision:resnet18", "not an object detector"),
        ("torchvision:maskrcnn_resnet50_fpn", "torchvision:fasterrcnn_resnet50_fpn"),
        ("torchvision:keypointrcnn_resnet50_fpn", "torchvision:fasterrcnn_resnet50_fpn"),
    ],
)
def test_models_it_cannot_train_on_this_data(shapes, tmp_path, spec, words):
    code, out = train(spec, "--data", str(shapes), project=tmp_path)
    assert code == 2 and words in out, out
    assert "Traceback" not in out


def test_weights_of_another_architecture(shapes, tmp_path):
    import torchvision

    from headfit.train.tiny import tiny_fcos

    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    code, out = train(OWN, "--data", str(shapes), "--weights", str(path), project=tmp_path)
    assert code == 2 and "for this architecture" in out  # nothing fits at all
    # a detector that shares some names (the FCOS head) but not the backbone
    torch.save(tiny_fcos(2).state_dict(), path)
    code, out = train(OWN, "--data", str(shapes), "--weights", str(path), project=tmp_path)
    assert code == 2 and "saved from another architecture" in out, out


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(shapes, tmp_path, monkeypatch):
    import safetensors.torch

    assert train(OWN, "--data", str(shapes), "--epochs", "1", *SMALL, project=tmp_path)[0] == 0
    before = (tmp_path / "exp" / "last.safetensors").read_bytes()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    code, out = train("--resume", str(tmp_path / "exp"), "--epochs", "2", "--trust-code", project=tmp_path)
    assert code == 2 and "no space left on the device" in out
    assert (tmp_path / "exp" / "last.safetensors").read_bytes() == before


# -- the re-heading keeps what the checkpoint knows ---------------------------------------------------


def test_known_class_rows_start_from_the_pretrained_rows():
    from headfit.families import family_for
    from headfit.train.heads import matching_rows, reheaded
    from headfit.train.tiny import tiny_fcos

    coco = __import__("headfit.classnames", fromlist=["x"]).source_categories(91)
    model = tiny_fcos(91)
    old = model.head.classification_head.cls_logits.weight.detach().clone()
    family = family_for(model)
    names = ["person", "widget", "car"]
    rows = matching_rows(names, coco, family, 91)
    assert rows == [coco.index("person"), None, coco.index("car")]
    done = reheaded(model, names, rows, coco)
    new = model.head.classification_head.cls_logits.weight
    assert torch.equal(new[0], old[rows[0]]) and torch.equal(new[2], old[rows[2]])
    assert not any(torch.equal(new[1], row) for row in old)  # fresh
    assert [k[0] for k in done.kept] == ["person", "car"]


def test_known_rows_in_an_rcnn_head_keep_the_background():
    import torchvision

    from headfit.classnames import source_categories
    from headfit.families import family_for
    from headfit.train.heads import matching_rows, reheaded

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None
    )
    box = model.roi_heads.box_predictor
    cls, reg = box.cls_score.weight.detach().clone(), box.bbox_pred.weight.detach().clone()
    coco = source_categories(91)
    rows = matching_rows(["dog", "gizmo"], coco, family_for(model), 91)
    reheaded(model, ["dog", "gizmo"], rows, coco)
    box = model.roi_heads.box_predictor
    dog = coco.index("dog")
    assert box.cls_score.out_features == 3
    assert torch.equal(box.cls_score.weight[0], cls[0]) and torch.equal(box.cls_score.weight[1], cls[dog])
    assert torch.equal(box.bbox_pred.weight[4:8], reg[4 * dog : 4 * dog + 4])
    assert not any(torch.equal(box.cls_score.weight[2], row) for row in cls)


@pytest.mark.slow  # 25 s here (pytest --durations, -n 2)
def test_weights_with_coco_names_say_which_rows_they_kept(tmp_path):
    from headfit.train.tiny import tiny_fcos

    data = tmp_path / "data"
    synth(data, images=8, classes=2, size=64)
    for name in ("train.json", "val.json"):
        document = json.loads((data / name).read_text())
        document["categories"][0]["name"] = "person"
        (data / name).write_text(json.dumps(document))
    torch.save(tiny_fcos(91).state_dict(), tmp_path / "coco.pth")
    code, out = train(
        TINY,
        "--data",
        str(data),
        "--weights",
        str(tmp_path / "coco.pth"),
        "--epochs",
        "1",
        *SMALL,
        "--json",
        project=tmp_path,
    )
    assert code == 0, out
    choices = {c["topic"]: c["value"] for c in json.loads(out)["plan"]["choices"]}
    assert choices["kept rows"] == "`person` from pretrained row 1 (person)"


# -- every torchvision builder constructs, passes the pre-flight and takes a step ------------------------

FAST = ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"]
SLOW = [
    "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
    "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "ssd300_vgg16",
]  # fmt: skip


def _one_step(spec: str, data: Path, tmp_path: Path, imgsz: int = 64) -> dict[str, float]:
    prepared = prepare(
        TrainOptions(model=spec, data=data, imgsz=imgsz, batch=2, workers=0, project=tmp_path, epochs=1)
    )
    assert prepared.plan.check.ok
    trainer = prepared.trainer
    terms = trainer._step(next(iter(trainer.task.batches(0, 0))))
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values()), terms
    return terms


@pytest.mark.parametrize("builder", [*FAST, *[pytest.param(b, marks=pytest.mark.slow) for b in SLOW]])
def test_every_builder_trains_a_step(builder, shapes, tmp_path):
    imgsz = 300 if builder == "ssd300_vgg16" else 64  # VGG's extra layers need 300 px (check says so)
    terms = _one_step(f"torchvision:{builder}", shapes, tmp_path, imgsz)
    assert len(terms) >= 3  # the total and the family's own loss terms


@pytest.mark.parametrize(
    "builder",
    [pytest.param(b, marks=pytest.mark.slow) for b in ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")],
)
def test_mask_rcnn_trains_on_polygon_masks(builder, tmp_path):
    data = tmp_path / "data"
    synth(data, images=6, classes=2, size=96)
    for name in ("train.json", "val.json"):
        document = json.loads((data / name).read_text())
        for a in document["annotations"]:
            x, y, w, h = a["bbox"]
            a["segmentation"] = [[x, y, x + w, y, x + w / 2, y + h]]  # a triangle inside the box
        (data / name).write_text(json.dumps(document))
    terms = _one_step(f"torchvision:{builder}", data, tmp_path)
    assert terms["loss_mask"] > 0


def test_freeze_backbone_keeps_its_weights(shapes, tmp_path):
    prepared = prepare(
        TrainOptions(
            model=OWN, data=shapes, imgsz=64, batch=2, workers=0, project=tmp_path, freeze=("backbone",)
        )
    )
    model = prepared.trainer.model
    before = {k: v.detach().clone() for k, v in model.backbone.features.named_parameters()}
    head = model.head.classification_head.cls_logits.weight.detach().clone()
    prepared.trainer._step(next(iter(prepared.trainer.task.batches(0, 0))))
    after = dict(model.backbone.features.named_parameters())
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not torch.equal(head, model.head.classification_head.cls_logits.weight)
    assert any("frozen" == c.topic for c in prepared.plan.choices)
