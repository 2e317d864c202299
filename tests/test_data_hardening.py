"""The ways real datasets lose or misname their images, and the files that look like a dataset but are
not one: each is resolved (and noted once) or reported with the dataset's ids and the exact fix; the
unreadable ones are one paragraph and exit 2."""

from __future__ import annotations

import json
import os

import pytest

from data_support import coco, image, voc_xml, yolo
from headfit.cli import main
from headfit.datasets import read
from headfit.datasets.fix import fix
from headfit.datasets.lint import lint
from headfit.errors import UsageError


def _entry(file_name: str) -> dict:
    return {"id": 7, "file_name": file_name, "width": 64, "height": 48}


def _one_box_coco(folder, file_name: str, **where):
    return coco(folder, [_entry(file_name)], [{"image_id": 7, "bbox": [1, 1, 5, 5]}], write_images=False, **where)


def _paragraph(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main(["data", "check", *map(str, args)])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return stopped.value.code, " ".join(err.split())


# -- COCO file_name: where the images are ---------------------------------------------------------------


@pytest.mark.parametrize("layout", ["beside", "images", "given"])
def test_images_beside_the_json_in_images_or_given(tmp_path, layout):
    folder = {"beside": tmp_path, "images": tmp_path / "images", "given": tmp_path / "pics"}[layout]
    image(folder / "a.png")
    path = _one_box_coco(tmp_path / "ann" if layout == "given" else tmp_path, "a.png")
    dataset = read(path, images=folder if layout == "given" else None)
    assert dataset.images[0].file == folder / "a.png"
    assert lint(dataset).ok and not dataset.notes


@pytest.mark.parametrize(
    "file_name",
    [
        "train2017/a.png",  # a split folder prefix that is not here
        "/home/someone/datasets/coco/images/a.png",  # an absolute path from another machine
        "C:\\Users\\someone\\coco\\images\\a.png",  # ... written on Windows
    ],
)
def test_a_folder_prefix_that_is_not_here_is_resolved_by_the_tail_and_noted(tmp_path, file_name):
    image(tmp_path / "images" / "a.png")
    dataset = read(_one_box_coco(tmp_path, file_name))
    assert dataset.images[0].file == tmp_path / "images" / "a.png"
    assert [n for n in dataset.notes if "carries a folder that is not here" in n] == [
        n for n in dataset.notes if f"`{file_name.replace(chr(92), '/')}` -> `" in n
    ] != []
    report = lint(dataset)
    assert report.ok, [p.summary for p in report.problems]


def test_fix_writes_the_names_that_resolve_here(tmp_path):
    image(tmp_path / "images" / "a.png")
    path = _one_box_coco(tmp_path, "/mnt/old-disk/images/a.png")
    out = tmp_path / "clean.json"
    fix(read(path), out)
    names = [e["file_name"] for e in json.loads(out.read_text())["images"]]
    assert names == ["images/a.png"]
    assert not read(out).notes and lint(read(out)).ok


def test_an_extension_in_another_letter_case_is_resolved_and_noted(tmp_path):
    image(tmp_path / "a.png")
    dataset = read(_one_box_coco(tmp_path, "a.PNG"))
    assert dataset.images[0].file == tmp_path / "a.png"
    (note,) = dataset.notes
    assert "1 file name differs from the file only in letter case (`a.PNG` -> `a.png`)" in note
    assert lint(dataset).ok


def test_an_image_found_nowhere_is_hf308_with_its_id_and_the_flag(tmp_path):
    image(tmp_path / "a.png")
    images = [_entry("a.png"), {**_entry("gone/b.png"), "id": 8}]
    path = coco(tmp_path, images, [{"image_id": 8, "bbox": [1, 1, 5, 5]}], write_images=False)
    (problem,) = lint(read(path)).problems
    assert (problem.code, problem.image_id, problem.annotation_id) == ("HF308", 8, None)
    assert problem.file == str(tmp_path / "gone" / "b.png")
    assert "pass `--images DIR`, the folder `file_name` is relative to" in problem.fix
    assert "`--fix OUT` leaves the image and its 1 box out" in problem.fix


# -- COCO JSON that is not an instances file -------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([1, 2, 3], "is a JSON list, not a COCO instances file"),
        (
            {
                "images": [_entry("a.png")],
                "annotations": [{"image_id": 7, "file_name": "a.png", "segments_info": []}],
                "categories": [{"id": 1, "name": "cat", "isthing": 1}],
            },
            "is a COCO panoptic file",
        ),
        (
            {"images": [_entry("a.png")], "annotations": [{"id": 1, "image_id": 7, "caption": "a cat"}], "categories": []},
            "is a COCO captions file",
        ),
        (
            {
                "images": [_entry("a.png")],
                "annotations": [{"image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}],
                "categories": [{"id": 1, "name": "cat"}],
            },
            "is a COCO results file",
        ),
    ],
    ids=["list", "panoptic", "captions", "results-in-an-object"],
)
def test_json_that_is_not_an_instances_file_is_one_paragraph(capsys, tmp_path, document, says):
    image(tmp_path / "a.png")
    (tmp_path / "other.json").write_text(json.dumps(document))
    code, text = _paragraph(capsys, tmp_path / "other.json")
    assert code == 2 and says in text and "`images` ([{id, file_name, width, height}])" in text


# -- YOLO ------------------------------------------------------------------------------------------------


def test_yolo_path_root_with_relative_splits(tmp_path):
    root = tmp_path / "datasets" / "pets"
    yolo(root, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    (tmp_path / "configs").mkdir()
    yaml = tmp_path / "configs" / "pets.yaml"
    yaml.write_text("path: ../datasets/pets\ntrain: images/train\nval: images/train\nnames: [cat]\n")
    dataset = read(yaml)
    assert dataset.images[0].file.resolve() == root / "images" / "train" / "a.png"
    assert dataset.images[0].image_id == "images/train/a.png" and dataset.num_annotations == 1


def test_yolo_path_root_relative_to_the_working_folder(tmp_path, monkeypatch):
    yolo(tmp_path / "pets", {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    (tmp_path / "configs").mkdir()
    yaml = tmp_path / "configs" / "pets.yaml"
    yaml.write_text("path: pets\ntrain: images/train\nnames: [cat]\n")
    monkeypatch.chdir(tmp_path)
    dataset = read(yaml)
    assert dataset.images[0].file.resolve() == (tmp_path / "pets" / "images" / "train" / "a.png").resolve()
    assert any("relative to the working folder" in n for n in dataset.notes)


def test_yolo_path_from_another_machine_falls_back_to_the_yaml_folder(tmp_path):
    yaml = yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    yaml.write_text("path: /home/someone/datasets/pets\ntrain: images/train\nnames: [cat]\n")
    dataset = read(yaml)
    assert dataset.num_annotations == 1
    assert any("`path: /home/someone/datasets/pets` does not exist here" in n for n in dataset.notes)


def test_yolo_path_that_leads_nowhere_is_one_paragraph(capsys, tmp_path):
    yaml = yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    yaml.write_text("path: /home/someone/pets\ntrain: train/images\nnames: [cat]\n")
    code, text = _paragraph(capsys, yaml)
    assert code == 2 and "`path: /home/someone/pets` is not a folder" in text and "`train: train/images`" in text


@pytest.mark.parametrize("names", ["[cat, dog]", "{0: cat, 1: dog}", "{'0': cat, '1': dog}"])
def test_yolo_names_as_a_list_or_a_mapping(tmp_path, names):
    yaml = yolo(tmp_path, {"a": "1 0.5 0.5 0.2 0.2\n"}, ["cat", "dog"])
    yaml.write_text(f"path: .\ntrain: images/train\nnames: {names}\n")
    dataset = read(yaml)
    assert (dataset.classes.ids, dataset.classes.names) == ([0, 1], ["cat", "dog"])
    assert dataset.images[0].category_ids.tolist() == [1]


def test_yolo_labels_without_images_and_images_without_labels(tmp_path):
    yaml = yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "b": None}, ["cat"])
    (tmp_path / "labels" / "train" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    dataset = read(yaml)
    report = lint(dataset)
    (orphan,) = report.problems
    assert (orphan.code, orphan.image_id, orphan.annotation_id) == ("HF305", None, "labels/train/gone.txt")
    assert "restore its image, or delete the label file" in orphan.fix
    assert any("1 of 2 images have no label file" in n for n in report.notes)


# -- VOC and CSV -------------------------------------------------------------------------------------------


def test_voc_filename_that_differs_from_the_xml_uses_the_image_named_like_the_xml(tmp_path):
    (tmp_path / "Annotations").mkdir()
    image(tmp_path / "JPEGImages" / "b.jpg")
    (tmp_path / "Annotations" / "b.xml").write_text(voc_xml("IMG_0001.jpg", [("cat", (2, 2, 10, 10))]))
    dataset = read(tmp_path)
    assert dataset.images[0].file == tmp_path / "JPEGImages" / "b.jpg"
    assert any("`<filename>` IMG_0001.jpg does not exist; `b.jpg`, named like the XML, was used" in n for n in dataset.notes)
    assert lint(dataset).ok


def test_voc_filename_found_nowhere_is_hf308(tmp_path):
    (tmp_path / "Annotations").mkdir()
    image(tmp_path / "JPEGImages" / "a.jpg")
    (tmp_path / "Annotations" / "a.xml").write_text(voc_xml("a.jpg", [("cat", (2, 2, 10, 10))]))
    (tmp_path / "Annotations" / "b.xml").write_text(voc_xml("IMG_0001.jpg", [("cat", (2, 2, 10, 10))]))
    (problem,) = lint(read(tmp_path)).problems
    assert (problem.code, problem.image_id) == ("HF308", "b") and "`<filename>` is looked for in `JPEGImages/`" in problem.fix


def test_csv_paths_relative_to_its_folder(tmp_path):
    image(tmp_path / "data" / "pics" / "a.png")
    (tmp_path / "data" / "boxes.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\npics/a.png,1,2,11,12,tree\n")
    dataset = read(tmp_path / "data" / "boxes.csv")
    assert dataset.images[0].file == tmp_path / "data" / "pics" / "a.png" and not dataset.notes


def test_csv_paths_written_from_the_project_folder_are_resolved_and_noted(tmp_path):
    image(tmp_path / "data" / "pics" / "a.png")
    (tmp_path / "data" / "boxes.csv").write_text(
        "image_path,xmin,ymin,xmax,ymax,label\ndata/pics/a.png,1,2,11,12,tree\n"
    )
    dataset = read(tmp_path / "data" / "boxes.csv")
    assert dataset.images[0].file == tmp_path / "data" / "pics" / "a.png"
    assert any("`data/pics/a.png` -> `" in n for n in dataset.notes)
    assert lint(dataset).ok


def test_many_misnamed_images_are_one_note_not_one_each(tmp_path):
    entries = [{**_entry(f"/srv/old/{k}.PNG"), "id": k} for k in range(1, 6)]
    for k in range(1, 6):
        image(tmp_path / f"{k}.png")
    dataset = read(coco(tmp_path, entries, [], write_images=False))
    assert all(r.file.exists() for r in dataset.images)
    assert len(dataset.notes) <= 2 and any("and 3 more" in n for n in dataset.notes)
    assert os.path.basename(str(dataset.images[0].file)) == "1.png"


def test_an_unreadable_yaml_root_raises_usage_error_from_the_api(tmp_path):
    yaml = yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    yaml.write_text("path: nowhere\ntrain: images/nothing\nnames: [cat]\n")
    with pytest.raises(UsageError, match="`path: nowhere` is not a folder"):
        read(yaml)


def test_a_file_name_without_its_subfolder_is_found_below_and_noted(tmp_path):
    image(tmp_path / "images" / "train2017" / "a.png")
    dataset = read(_one_box_coco(tmp_path, "a.png"))
    assert dataset.images[0].file == tmp_path / "images" / "train2017" / "a.png"
    (note,) = dataset.notes
    assert "1 image is in a subfolder of where the name says (`a.png` -> `" in note and "--images DIR" in note
    assert lint(dataset).ok


def test_a_name_in_two_subfolders_is_not_guessed(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "images" / "train" / "b.png")
    image(tmp_path / "images" / "val" / "b.png")
    images = [_entry("a.png"), {**_entry("b.png"), "id": 8}]
    path = coco(tmp_path, images, [], write_images=False)
    report = lint(read(path))
    (problem,) = report.problems
    assert (problem.code, problem.image_id) == ("HF308", 8)
    (note,) = [n for n in report.notes if "none was guessed" in n]
    assert "1 missing image has more than one file of its name" in note
    assert f"`{tmp_path / 'images' / 'train' / 'b.png'}`, `{tmp_path / 'images' / 'val' / 'b.png'}`" in note


def test_a_yolo_list_of_paths_from_another_machine(tmp_path):
    yaml = yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    (tmp_path / "train.txt").write_text(
        "./images/train/a.png\n/home/someone/datasets/pets/images/train/b.png\n"
    )
    yaml.write_text("path: .\ntrain: train.txt\nnames: [cat]\n")
    dataset = read(yaml)
    assert [r.image_id for r in dataset.images] == ["images/train/a.png", "images/train/b.png"]
    assert dataset.num_annotations == 2 and lint(dataset).ok
    assert any("carries a folder that is not here" in n for n in dataset.notes)


def test_a_yolo_path_that_is_not_here_with_absolute_splits(tmp_path):
    yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    yaml = tmp_path / "data.yaml"
    yaml.write_text(f"path: /nowhere/pets\ntrain: {tmp_path / 'images' / 'train'}\nnames: [cat]\n")
    dataset = read(yaml)
    assert dataset.num_annotations == 1 and any("does not exist here" in n for n in dataset.notes)
