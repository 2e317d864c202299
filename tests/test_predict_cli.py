"""``headfit predict`` and ``detect``: files and folders in, annotated images and COCO results out
(in the data's category ids), label offsets, workers, and every bad input as exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_support import run_in_process
from headfit.datasets import read
from headfit.datasets.records import ClassMap
from headfit.errors import UsageError
from tiny_models import one_thread, trained_checkpoint


@pytest.fixture(autouse=True)
def torch_on_one_thread():
    with one_thread():
        yield


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_in_process(capsys, "predict", *argv, fold_err=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return trained_checkpoint(tmp_path_factory.mktemp("predict"))


def test_files_and_folders_give_annotated_images_and_coco_results(capsys, trained, tmp_path):
    checkpoint, val = trained
    images = val.parent / "images"
    single = sorted(images.iterdir())[0]
    other = tmp_path / "more"
    other.mkdir()
    (other / single.name).write_bytes(single.read_bytes())  # the same name in another folder
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys, str(checkpoint), str(single), str(other), "--out", str(out), "--conf", "0.3", "--trust-code"
    )
    assert code == 0, err
    written = json.loads((out / "predictions.json").read_text())
    assert written, "the trained model finds something"
    assert {tuple(sorted(r)) for r in written} == {("bbox", "category_id", "file", "image_id", "score")}
    assert {r["category_id"] for r in written} <= {1, 2, 3}  # the data's ids, not the model's labels 0..2
    assert all(r["score"] >= 0.3 and len(r["bbox"]) == 4 and r["bbox"][2] > 0 for r in written)
    assert {r["image_id"] for r in written} == {int(single.stem)}
    drawn = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert drawn == [single.name, f"{single.stem}_2.png"]
    assert f"{single}:" in stdout and "wrote `" in stdout and "bbox [x, y, w, h]" in " ".join(stdout.split())


def test_json_prints_the_records_it_writes_and_default_folders_are_never_reused(
    capsys, trained, tmp_path, monkeypatch
):
    checkpoint, val = trained
    monkeypatch.chdir(tmp_path)
    images = str(val.parent / "images")
    code, stdout, err = run_cli(capsys, str(checkpoint), images, "--json", "--trust-code")
    assert code == 0, err
    assert json.loads(stdout) == json.loads((tmp_path / "runs/predict/exp/predictions.json").read_text())
    code, _, err = run_cli(capsys, str(checkpoint), images, "--trust-code")
    assert code == 0, err
    assert (tmp_path / "runs/predict/exp2/predictions.json").is_file()


def test_the_records_match_detect_on_the_dataset(capsys, trained, tmp_path):
    from headfit.checkpoint import load_detector
    from headfit.evaluation import detect

    checkpoint, val = trained
    dataset = read(val)
    found = detect(
        load_detector(checkpoint, trust_code=True).model, dataset, batch_size=3, score_threshold=0.3
    )
    code, stdout, err = run_cli(
        capsys,
        str(checkpoint),
        str(val.parent / "images"),
        "--conf",
        "0.3",
        "--json",
        "--out",
        str(tmp_path),
        "--trust-code",
    )
    assert code == 0, err
    records = [r for r in json.loads(stdout) if r["image_id"] in {d.image_id for d in found}]
    expected = sum(len(d) for d in found)
    assert len(records) == expected
    first = next(d for d in found if len(d))
    x1, y1, x2, y2 = first.boxes[0].tolist()
    assert any(
        r["image_id"] == first.image_id and r["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)
        for r in records
    )


def test_bad_inputs_are_one_paragraph_and_exit_2(capsys, trained, tmp_path):
    checkpoint, _ = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + np.random.default_rng(0).bytes(100))
    cases = {
        "an empty folder": ([str(empty)], "holds no image files"),
        "a missing file": ([str(tmp_path / "nope.png")], "does not exist"),
        "an undecodable image": ([str(broken)], "cannot decode image"),
        "a conf above 1": ([str(broken), "--conf", "2"], "--conf is a score between 0 and 1"),
    }
    for case, (argv, expected) in cases.items():
        code, out, err = run_cli(capsys, str(checkpoint), *argv, "--trust-code", "--out", str(tmp_path / "o"))
        assert code == 2 and expected in err and "Traceback" not in err, (case, err)
    code, out, err = run_cli(capsys, str(checkpoint), str(broken), "--out", str(tmp_path / "o"))
    assert code == 2 and "--trust-code" in err


def test_detect_maps_labels_through_the_background_offset():
    from headfit import adapt
    from headfit.evaluation.inference import _detections, label_offset
    from headfit.spec import build_model
    from tiny_models import tiny_fcos

    classes = ClassMap(ids=[1, 3, 7], names=["a", "b", "c"])
    ssd = adapt(build_model("torchvision:ssdlite320_mobilenet_v3_large"), 3, verify=False)
    fcos = adapt(tiny_fcos(), 3, verify=False)
    assert label_offset(ssd, classes) == 1 and label_offset(fcos, classes) == 0
    output = {
        "boxes": torch.zeros(3, 4),
        "scores": torch.tensor([0.9, 0.5, 0.1]),
        "labels": torch.tensor([1, 2, 3]),
    }
    mapped = _detections("img", output, np.asarray(classes.ids), 1, score_threshold := 0.2)
    assert mapped.category_ids.tolist() == [1, 3] and (mapped.scores >= score_threshold).all()
    with pytest.raises(UsageError, match="label 3 on image 'img', outside its 3 classes"):
        _detections("img", output, np.asarray(classes.ids), 0, 0.0)
    with pytest.raises(UsageError, match="the model predicts 91 classes but the data has 3"):
        label_offset(tiny_fcos(), classes)


def test_detect_restores_training_mode_and_workers_give_the_same_detections(trained):
    from headfit.checkpoint import load_detector
    from headfit.evaluation import detect

    checkpoint, val = trained
    dataset = read(val)
    model = load_detector(checkpoint, trust_code=True).model.train()
    alone = detect(model, dataset, batch_size=2)
    assert model.training
    together = detect(model, dataset, batch_size=2, workers=2)
    assert [d.image_id for d in alone] == [r.image_id for r in dataset.images]
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.category_ids, b.category_ids)
