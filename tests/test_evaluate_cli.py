"""``headfit evaluate``: the table, the JSON document (equal to pycocotools on the data's own COCO
file), class maps matched by name or refused, dense data, plots, and every bad input as exit 2."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cli_support import run_in_process
from tiny_models import CLASSIFIER_SPEC, one_thread, trained_checkpoint


@pytest.fixture(autouse=True)
def torch_on_one_thread():
    with one_thread():
        yield


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    return run_in_process(capsys, "evaluate", *argv, fold_err=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return trained_checkpoint(tmp_path_factory.mktemp("evaluate"))


def test_the_table_names_each_class_with_its_id_and_ground_truth(capsys, trained):
    checkpoint, val = trained
    code, out, err = run_cli(capsys, str(checkpoint), "--data", str(val), "--trust-code")
    assert code == 0, err
    document = json.loads(val.read_text())
    for category in document["categories"]:
        count = sum(a["category_id"] == category["id"] for a in document["annotations"])
        assert any(
            line.split()[:4] == [category["name"], "│", str(category["id"]), "│"]
            and f"│ {count:>12} │" in line
            for line in out.splitlines()
        ), (category, out)
    assert f"{len(document['images'])} images, {len(document['annotations'])} boxes, 3 classes" in " ".join(
        out.split()
    )
    assert "AP50" in out and "AR100" in out and "maxDets 100" in out


def test_the_json_equals_pycocotools_on_the_datas_own_coco_file(capsys, trained):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from headfit.checkpoint import load_detector
    from headfit.datasets import read
    from headfit.evaluation import detect

    checkpoint, val = trained
    code, out, err = run_cli(capsys, str(checkpoint), "--data", str(val), "--trust-code", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "per_class"} <= set(document)
    detections = detect(load_detector(checkpoint, trust_code=True).model, read(val))
    results = [
        {"image_id": d.image_id, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)}
        for d in detections
        for (x1, y1, x2, y2), s, c in zip(
            d.boxes.tolist(), d.scores.tolist(), d.category_ids.tolist(), strict=True
        )
    ]
    assert results, "the trained model finds something"
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(val))
        reference = COCOeval(truth, truth.loadRes(results), "bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    # AP / AP50 / AP75 / AR100 do not depend on the file's `area` (the small/medium/large split does)
    for key, index in (("AP", 0), ("AP50", 1), ("AP75", 2), ("AR100", 8)):
        assert document[key] == pytest.approx(reference.stats[index], abs=1e-6), key
    assert document["AP50"] > 0.2  # a few SGD steps already find the shapes
    for k, row in enumerate(document["per_class"]):
        precision = reference.eval["precision"][:, :, k, 0, -1]
        assert row["AP"] == pytest.approx(precision[precision > -1].mean(), abs=1e-6)


def _rewrite(val: Path, out: Path, change) -> Path:
    document = json.loads(val.read_text())
    change(document)
    out.write_text(json.dumps(document))
    (out.parent / "images").mkdir(exist_ok=True)
    for image in document["images"]:
        target = out.parent / "images" / image["file_name"]
        if not target.exists():
            target.symlink_to(val.parent / "images" / image["file_name"])
    return out


def test_classes_listed_in_another_order_are_matched_by_name(capsys, trained, tmp_path):
    checkpoint, val = trained

    def reorder(document):
        new_ids = {1: 30, 2: 10, 3: 20}  # circle -> 30, square -> 10, triangle -> 20, listed by new id
        for category in document["categories"]:
            category["id"] = new_ids[category["id"]]
        document["categories"].sort(key=lambda c: c["id"])
        for annotation in document["annotations"]:
            annotation["category_id"] = new_ids[annotation["category_id"]]

    reordered = _rewrite(val, tmp_path / "reordered.json", reorder)
    _, original, _ = run_cli(capsys, str(checkpoint), "--data", str(val), "--trust-code", "--json")
    code, out, err = run_cli(capsys, str(checkpoint), "--data", str(reordered), "--trust-code", "--json")
    assert code == 0, err
    before, after = json.loads(original), json.loads(out)
    assert after["AP"] == pytest.approx(before["AP"], abs=1e-9)
    rows = {row["name"]: row for row in after["per_class"]}
    for row in before["per_class"]:
        assert rows[row["name"]]["AP"] == pytest.approx(row["AP"], abs=1e-9)
    assert [rows[n]["id"] for n in ("circle", "square", "triangle")] == [30, 10, 20]
    assert any("matched to the checkpoint's" in note for note in after["notes"])


def test_data_with_other_class_names_is_refused_naming_both_lists(capsys, trained, tmp_path):
    checkpoint, val = trained

    def rename(document):
        document["categories"][1]["name"] = "rectangle"

    renamed = _rewrite(val, tmp_path / "renamed.json", rename)
    code, out, err = run_cli(capsys, str(checkpoint), "--data", str(renamed), "--trust-code")
    assert code == 2 and out == ""
    assert "was trained on 3 classes (`circle`, `square`, `triangle`)" in err
    assert "the data has 3 (`circle`, `rectangle`, `triangle`)" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_dense_images_raise_maxdets_and_the_models_cap_and_say_so(capsys, trained, tmp_path):
    checkpoint, val = trained

    def crowd_one_image(document):
        first = document["images"][0]["id"]
        document["annotations"] = [a for a in document["annotations"] if a["image_id"] != first]
        for i in range(130):  # a grid of small circles: 130 boxes of one class on one image
            x, y = 4 * (i % 16), 4 * (i // 16)
            document["annotations"].append(
                {
                    "id": 10_000 + i,
                    "image_id": first,
                    "category_id": 1,
                    "bbox": [x, y, 3, 3],
                    "area": 9,
                    "iscrowd": 0,
                }
            )

    dense = _rewrite(val, tmp_path / "dense.json", crowd_one_image)
    code, out, err = run_cli(capsys, str(checkpoint), "--data", str(dense), "--trust-code", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["max_dets"] == 300 and document["AR_max"] is not None
    (note,) = [n for n in document["notes"] if "more than COCO's 100" in n]
    assert "up to 130 boxes" in note and "maxDets raised from 100 to 300" in note
    assert "the model's detections per image raised from 100 to 300" in note


def test_plots_are_written(capsys, trained, tmp_path):
    checkpoint, val = trained
    code, out, err = run_cli(
        capsys, str(checkpoint), "--data", str(val), "--trust-code", "--plots", str(tmp_path / "p")
    )
    assert code == 0, err
    for name in ("pr_curves.png", "predictions.png"):
        data = (tmp_path / "p" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_bad_inputs_are_one_paragraph_and_exit_2(capsys, trained, tmp_path):
    from headfit.saved import adapt_file

    checkpoint, val = trained
    classifier = tmp_path / "cls.safetensors"
    adapt_file(CLASSIFIER_SPEC, 2, classifier)
    text = tmp_path / "model.safetensors"
    text.write_text("not weights")
    cases = {
        "without --trust-code": ([str(checkpoint), "--data", str(val)], "would run the Python file"),
        "a folder": (
            [str(checkpoint.parent), "--data", str(val)],
            "is a folder: give the checkpoint file inside it",
        ),
        "no sidecar": ([str(text), "--data", str(val)], "has no sidecar 'model.safetensors.json'"),
        "a classifier": ([str(classifier), "--data", str(val), "--trust-code"], "not an object detector"),
        "missing data": (
            [str(checkpoint), "--data", str(tmp_path / "nope.json"), "--trust-code"],
            "does not exist",
        ),
        "bad device": (
            [str(checkpoint), "--data", str(val), "--device", "tpu", "--trust-code"],
            "is not a device torch knows",
        ),
    }
    for case, (argv, expected) in cases.items():
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and expected in err and "Traceback" not in err, (case, err)
    code, out, _ = run_cli(capsys, str(checkpoint), "--data", str(val), "--json")
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2


def test_an_image_that_cannot_be_decoded_is_named(capsys, trained, tmp_path):
    checkpoint, val = trained
    broken = _rewrite(val, tmp_path / "broken.json", lambda document: None)
    name = json.loads(val.read_text())["images"][0]["file_name"]
    target = tmp_path / "images" / name
    target.unlink()
    target.write_bytes(np.random.default_rng(0).bytes(64))
    code, out, err = run_cli(capsys, str(checkpoint), "--data", str(broken), "--trust-code")
    assert code == 2 and name in err and "Traceback" not in err, err


def test_the_same_objects_as_a_yolo_set_score_the_same_and_val_is_the_default_split(
    capsys, trained, tmp_path
):
    checkpoint, val = trained
    root = tmp_path / "yolo"
    for split, source in (("train", val.with_name("train.json")), ("val", val)):
        document = json.loads(source.read_text())
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for image in document["images"]:
            (root / "images" / split / image["file_name"]).symlink_to(
                source.parent / "images" / image["file_name"]
            )
            lines = [
                f"{a['category_id'] - 1} {(a['bbox'][0] + a['bbox'][2] / 2) / image['width']:.6f} "
                f"{(a['bbox'][1] + a['bbox'][3] / 2) / image['height']:.6f} "
                f"{a['bbox'][2] / image['width']:.6f} {a['bbox'][3] / image['height']:.6f}"
                for a in document["annotations"]
                if a["image_id"] == image["id"]
            ]
            (root / "labels" / split / f"{Path(image['file_name']).stem}.txt").write_text(
                "\n".join(lines) + "\n"
            )
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames: [circle, square, triangle]\n"
    )
    _, coco, _ = run_cli(capsys, str(checkpoint), "--data", str(val), "--trust-code", "--json")
    code, out, err = run_cli(
        capsys, str(checkpoint), "--data", str(root / "data.yaml"), "--trust-code", "--json"
    )
    assert code == 0, err
    yolo = json.loads(out)
    assert (
        yolo["images"] == json.loads(coco)["images"]
        and "evaluated on the data's `val` split" in yolo["notes"][0]
    )
    assert yolo["AP"] == pytest.approx(json.loads(coco)["AP"], abs=1e-4)  # YOLO stores boxes to 6 decimals
    assert [row["id"] for row in yolo["per_class"]] == [0, 1, 2]


def test_a_checkpoint_of_headfit_adapt_without_class_names_takes_the_datas_classes_in_order(
    capsys, trained, tmp_path
):
    from headfit.saved import adapt_file
    from tiny_models import SPEC

    _, val = trained
    adapted = tmp_path / "adapted.safetensors"
    adapt_file(SPEC, 3, adapted)
    code, out, err = run_cli(capsys, str(adapted), "--data", str(val), "--trust-code", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert [row["name"] for row in document["per_class"]] == ["circle", "square", "triangle"]
    assert (
        "the checkpoint has no class names: its labels 0..2 are taken as the data's classes"
        in document["notes"][0]
    )
    adapt_file(SPEC, 2, tmp_path / "two.safetensors")
    code, _, err = run_cli(capsys, str(tmp_path / "two.safetensors"), "--data", str(val), "--trust-code")
    assert code == 2 and "predicts 2 classes and has no class names, but the data has 3" in err
