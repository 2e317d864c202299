"""`headfit data check --json` is the contract's document for every problem kind: exactly
``{"ok", "problems": [{"code", "image_id", "annotation_id", "file", "summary", "fix"}], "notes",
"stats"}``, the ids the dataset's own and null where they do not apply.

Each HF3nn code's own example (``codes/HF3nn.md``) is one dataset; the variants below add the other
kinds of problem a code covers (a YOLO line next to a COCO annotation, an image entry without an id),
and a test fails when a code is emitted that neither covers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_support import coco, image, voc_xml, yolo
from headfit.catalogue import all_codes, code_info
from headfit.cli import cli

PROBLEM_KEYS = {"code", "image_id", "annotation_id", "file", "summary", "fix"}
DATA_EXAMPLE = re.compile(r"^```python data\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
HF3 = sorted(c for c in all_codes() if c.startswith("HF3"))

# what each problem is about, so which ids apply: the whole dataset (no ids), one image (its id), one
# annotation (its id, and the image's where it has one), or a YOLO label file with no image
DATASET, IMAGE, ANNOTATION, LABEL_FILE = "dataset", "image", "annotation", "label file"
LEVEL = {
    "HF301": ANNOTATION, "HF302": ANNOTATION, "HF303": ANNOTATION, "HF304": DATASET,
    "HF305": ANNOTATION, "HF306": ANNOTATION, "HF307": ANNOTATION, "HF308": IMAGE,
    "HF309": IMAGE, "HF310": IMAGE, "HF311": IMAGE, "HF312": IMAGE, "HF313": IMAGE,
    "HF314": ANNOTATION, "HF315": ANNOTATION, "HF316": ANNOTATION, "HF317": IMAGE,
    "HF318": DATASET,
}  # fmt: skip


def _example(code: str) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        namespace: dict = {"__name__": "example"}
        exec(compile(DATA_EXAMPLE.search(code_info(code).text)["code"], f"{code}.md", "exec"), namespace)
        return namespace["DATA"]

    return write


# -- the kinds of problem the examples do not show ------------------------------------------------------


def _image_entry_without_id(folder: Path) -> str:
    image(folder / "a.png")
    images = [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}, {"file_name": "b.png"}]
    return str(coco(folder, images, [], write_images=False))


def _box_not_four_numbers(folder: Path) -> str:
    return str(coco(folder, [{"id": 1, "file_name": "a.png"}], [{"id": 5, "image_id": 1, "bbox": [1, 2, "x", 4]}]))


def _yolo_line_that_does_not_parse(folder: Path) -> str:
    return str(yolo(folder, {"a": "0 0.5 0.5 0.2\n"}, ["cat"]))


def _voc_object_without_a_box(folder: Path) -> str:
    image(folder / "a.png")
    (folder / "a.xml").write_text(voc_xml("a.png", [("cat", (1, 1, 9, 9))]).replace("<xmin>1</xmin>", ""))
    return str(folder / "a.xml")


def _csv_row_that_does_not_parse(folder: Path) -> str:
    image(folder / "a.png")
    (folder / "boxes.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,11,12,tree\na.png,1,x,3,4,tree\n")
    return str(folder / "boxes.csv")


def _yolo_label_without_image(folder: Path) -> str:
    path = yolo(folder, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    (folder / "labels" / "train" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    return str(path)


def _yolo_images_sharing_a_label_file(folder: Path) -> str:
    path = yolo(folder, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    image(folder / "images" / "train" / "a.jpg")
    return str(path)


def _box_entirely_outside(folder: Path) -> str:
    return str(coco(folder, [{"id": 1, "file_name": "a.png"}], [{"image_id": 1, "bbox": [70, 10, 5, 5]}]))


def _unknown_category(folder: Path) -> str:
    return str(coco(folder, [{"id": 1, "file_name": "a.png"}], [{"image_id": 1, "bbox": [1, 1, 5, 5], "category_id": 9}]))


def _missing_image_from_another_machine(folder: Path) -> str:
    image(folder / "a.png")
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "/srv/old/images/gone.png"}]
    return str(coco(folder, images, [], write_images=False))


VARIANTS: list[tuple[str, Callable[[Path], str], str, str]] = [
    ("image entry without an id", _image_entry_without_id, "HF316", DATASET),
    ("bbox not four numbers", _box_not_four_numbers, "HF316", ANNOTATION),
    ("YOLO line that does not parse", _yolo_line_that_does_not_parse, "HF316", ANNOTATION),
    ("VOC object without a box", _voc_object_without_a_box, "HF316", ANNOTATION),
    ("CSV row that does not parse", _csv_row_that_does_not_parse, "HF316", ANNOTATION),
    ("YOLO label file without its image", _yolo_label_without_image, "HF305", LABEL_FILE),
    ("YOLO images sharing a label file", _yolo_images_sharing_a_label_file, "HF313", IMAGE),
    ("box entirely outside", _box_entirely_outside, "HF303", ANNOTATION),
    ("unknown category", _unknown_category, "HF306", ANNOTATION),
    ("missing image named by a foreign path", _missing_image_from_another_machine, "HF308", IMAGE),
]
CASES = [(f"{code} example", _example(code), code, LEVEL[code]) for code in HF3] + VARIANTS


def _document(data: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["data", "check", data, "--json"])
    return result.exit_code, json.loads(result.stdout)


def _assert_contract_problem(problem: dict, level: str) -> None:
    assert set(problem) == PROBLEM_KEYS, sorted(problem)
    assert re.fullmatch(r"HF3\d\d", problem["code"])
    for key in ("image_id", "annotation_id"):
        assert problem[key] is None or type(problem[key]) in (int, str), (key, problem[key])
    assert problem["file"] is None or (isinstance(problem["file"], str) and problem["file"])
    assert isinstance(problem["summary"], str) and problem["summary"].strip()
    assert isinstance(problem["fix"], str) and problem["fix"].strip()
    image_id, annotation_id = problem["image_id"], problem["annotation_id"]
    if level == DATASET:
        assert (image_id, annotation_id) == (None, None), problem
    elif level == IMAGE:
        assert image_id is not None and annotation_id is None and problem["file"], problem
    elif level == LABEL_FILE:
        assert image_id is None and annotation_id is not None and problem["file"] is None, problem
    else:
        assert annotation_id is not None, problem


@pytest.mark.parametrize(("kind", "write", "code", "level"), CASES, ids=[c[0] for c in CASES])
def test_every_problem_kind_is_the_contract_document(tmp_path, monkeypatch, kind, write, code, level):
    monkeypatch.chdir(tmp_path)
    exit_code, document = _document(write(tmp_path))
    assert exit_code == 1 and set(document) == {"ok", "problems", "notes", "stats"}
    assert document["ok"] is False and isinstance(document["notes"], list)
    assert all(isinstance(n, str) for n in document["notes"])
    assert {"images", "annotations", "classes"} <= set(document["stats"])
    mine = [p for p in document["problems"] if p["code"] == code]
    assert mine, f"{kind}: no {code} in {[p['code'] for p in document['problems']]}"
    for problem in document["problems"]:
        _assert_contract_problem(problem, LEVEL[problem["code"]] if problem is not mine[0] else level)


def test_the_ids_are_the_datasets_own(tmp_path, monkeypatch):
    """COCO ids stay integers; YOLO's are the image path and `label file:line` it names."""
    monkeypatch.chdir(tmp_path)
    _, coco_document = _document(_unknown_category(tmp_path / "coco"))
    (problem,) = coco_document["problems"]
    assert (problem["image_id"], problem["annotation_id"]) == (1, 1)
    _, yolo_document = _document(_yolo_line_that_does_not_parse(tmp_path / "yolo"))
    (problem,) = yolo_document["problems"]
    assert (problem["image_id"], problem["annotation_id"]) == ("images/train/a.png", "labels/train/a.txt:1")
    assert os.path.basename(problem["file"]) == "a.png"


def test_every_hf3_code_is_covered_here():
    covered = {code for _, _, code, _ in CASES}
    assert covered == set(HF3) and set(LEVEL) == set(HF3), sorted(set(HF3) ^ covered)


def test_a_clean_dataset_is_the_same_document_with_no_problems(tmp_path):
    data = coco(tmp_path, [{"id": 1, "file_name": "a.png"}], [{"image_id": 1, "bbox": [1, 1, 5, 5]}])
    exit_code, document = _document(str(data))
    assert exit_code == 0 and document["ok"] is True and document["problems"] == []
    assert set(document) == {"ok", "problems", "notes", "stats"}
