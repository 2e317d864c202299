"""The YOLO, VOC and CSV readers (and COCO's image layouts): one in-memory form, the dataset's own ids,
one class map, sizes from headers, nothing dropped silently."""

from __future__ import annotations

import numpy as np
import pytest

from data_support import coco, image, voc_xml, yolo
from headfit.datasets import read, splits
from headfit.errors import UsageError


def _by_id(dataset):
    return {r.image_id: r for r in dataset.images}


# -- YOLO ----------------------------------------------------------------------------------------------


def test_yolo_boxes_are_denormalised_by_the_real_size(tmp_path):
    data = yolo(
        tmp_path,
        {"a": "1 0.5 0.5 0.25 0.5\n0 0.1 0.2 0.2 0.2\n", "b": "", "c": None},
        ["cat", "dog"],
        (64, 48),
    )
    dataset = read(data)
    assert dataset.format == "yolo" and dataset.split == "train"
    assert dataset.classes.ids == [0, 1] and dataset.classes.names == ["cat", "dog"]
    records = _by_id(dataset)
    a = records["images/train/a.png"]
    np.testing.assert_allclose(a.boxes, [[24, 12, 40, 36], [0, 4.8, 12.8, 14.4]], rtol=1e-6)
    assert a.category_ids.tolist() == [1, 0] and a.category_ids.dtype == np.int64
    assert a.annotation_ids == ["labels/train/a.txt:1", "labels/train/a.txt:2"]
    assert records["images/train/b.png"].num_boxes == 0 and records["images/train/c.png"].num_boxes == 0
    assert any("1 of 3 images have no label file" in n for n in dataset.notes)


def test_yolo_polygon_lines_become_their_extent(tmp_path):
    data = yolo(tmp_path, {"a": "0 0.25 0.25 0.75 0.25 0.5 0.75\n"}, ["cat"])
    np.testing.assert_allclose(read(data).images[0].boxes, [[16, 12, 48, 36]], rtol=1e-6)


def test_yolo_names_as_a_mapping_and_splits(tmp_path):
    yolo(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n"}, ["x"])
    (tmp_path / "data.yaml").write_text(
        "train: images/train\nval: images/train\nnames:\n  0: cat\n  1: dog\n"
    )
    assert read(tmp_path / "data.yaml").classes.names == ["cat", "dog"]
    assert splits(tmp_path / "data.yaml") == ["train", "val"]
    assert read(tmp_path, split="val").split == "val"  # the folder holding data.yaml
    with pytest.raises(UsageError, match="no `test` split"):
        read(tmp_path / "data.yaml", split="test")


def test_yolo_split_as_a_list_file(tmp_path):
    yolo(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n", "b": "0 0.5 0.5 0.5 0.5\n"}, ["cat"])
    (tmp_path / "train.txt").write_text("images/train/b.png\n")
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: [cat]\n")
    assert [r.image_id for r in read(tmp_path / "data.yaml").images] == ["images/train/b.png"]


def test_yolo_label_file_of_a_missing_image_is_an_orphan(tmp_path):
    data = yolo(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n"}, ["cat"])
    (tmp_path / "labels" / "train" / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    problems = read(data).problems
    assert [(p.code, p.annotation_id) for p in problems] == [("HF305", "labels/train/gone.txt")]


def test_yolo_twin_images_share_one_label_file(tmp_path):
    data = yolo(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n"}, ["cat"])
    image(tmp_path / "images" / "train" / "a.jpg")
    problems = read(data).problems
    assert [p.code for p in problems] == ["HF313"] and "labels/train/a.txt" in problems[0].summary


# -- VOC -----------------------------------------------------------------------------------------------


def _voc(root, stems, objects_of, sizes=None):
    for stem in stems:
        image(root / "JPEGImages" / f"{stem}.jpg", *(sizes or {}).get(stem, (64, 48)))
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", objects_of[stem]))
    return root


def test_voc_folder_with_splits_reads_one_based_boxes(tmp_path):
    root = _voc(
        tmp_path,
        ["a", "b"],
        {"a": [("dog", (1, 1, 10, 20)), ("cat", (5, 5, 64, 48))], "b": [("cat", (3, 4, 9, 9))]},
    )
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    (tmp_path / "ImageSets" / "Main" / "cat_val.txt").write_text("b 1\n")  # per-class lists are not splits
    everything = read(root)
    assert everything.format == "voc" and everything.classes.ids == ["cat", "dog"]
    a = _by_id(everything)["a"]
    assert a.boxes.tolist() == [[0, 0, 10, 20], [4, 4, 64, 48]]  # x1 = xmin - 1, x2 = xmax
    assert a.category_ids.tolist() == ["dog", "cat"] and a.annotation_ids == ["a.xml#1", "a.xml#2"]
    assert everything.classes.indices(a.category_ids).tolist() == [1, 0]
    assert any("1-based" in n for n in everything.notes)
    assert splits(root) == ["val"]
    assert [r.image_id for r in read(root, split="val").images] == ["b"]


def test_voc_with_a_zero_coordinate_is_read_as_written(tmp_path):
    root = _voc(tmp_path, ["a"], {"a": [("cat", (0, 3, 10, 20))]})
    dataset = read(root)
    assert dataset.images[0].boxes.tolist() == [[0, 3, 10, 20]]
    assert any("0-based" in n for n in dataset.notes)


def test_voc_object_without_a_box_is_named(tmp_path):
    (tmp_path / "a.xml").write_text(
        "<annotation><filename>a.png</filename><object><name>cat</name></object></annotation>"
    )
    image(tmp_path / "a.png")
    problems = read(tmp_path / "a.xml").problems
    assert [(p.code, p.annotation_id) for p in problems] == [("HF316", "a.xml#1")]


def test_voc_missing_filename_uses_the_twin_and_says_so(tmp_path):
    image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(voc_xml("a.tif", [("cat", (1, 1, 10, 10))]))
    dataset = read(tmp_path)
    assert dataset.images[0].file.name == "a.png"
    assert any("`a.tif` is missing; `a.png`" in n for n in dataset.notes)


# -- CSV -----------------------------------------------------------------------------------------------


def test_csv_rows_group_by_image_with_zero_rows_as_negatives(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png")
    (tmp_path / "boxes.csv").write_text(
        "label,image_path,xmin,ymin,xmax,ymax,score\n"
        "tree,a.png,1,2,11,12,0.9\nbush,a.png,5,5,9,9,0.8\n,b.png,0,0,0,0,\ntree,a.png,x,2,3,4,1\n"
    )
    dataset = read(tmp_path / "boxes.csv")
    records = _by_id(dataset)
    assert records["a.png"].boxes.tolist() == [[1, 2, 11, 12], [5, 5, 9, 9]]
    assert records["a.png"].annotation_ids == ["boxes.csv:2", "boxes.csv:3"]
    assert records["b.png"].num_boxes == 0
    assert dataset.classes.ids == ["bush", "tree"]
    assert [(p.code, p.annotation_id) for p in dataset.problems] == [("HF316", "boxes.csv:5")]
    assert any("0,0,0,0" in n for n in dataset.notes)


def test_csv_without_header(tmp_path):
    image(tmp_path / "a.png")
    (tmp_path / "boxes.csv").write_text("a.png,1,2,11,12,tree\n")
    assert read(tmp_path / "boxes.csv").images[0].boxes.tolist() == [[1, 2, 11, 12]]


# -- COCO layouts --------------------------------------------------------------------------------------


def test_coco_layout_annotations_beside_the_split_folder(tmp_path):
    image(tmp_path / "val2017" / "000001.jpg", 64, 48)
    coco(
        tmp_path / "annotations",
        [{"id": 1, "file_name": "000001.jpg", "width": 64, "height": 48}],
        [{"image_id": 1, "bbox": [1, 1, 5, 5]}],
        name="instances_val2017.json",
        write_images=False,
    )
    record = read(tmp_path / "annotations" / "instances_val2017.json").images[0]
    assert record.file == tmp_path / "val2017" / "000001.jpg" and record.width == 64


def test_coco_images_in_images_or_given(tmp_path):
    image(tmp_path / "images" / "a.png")
    image(tmp_path / "elsewhere" / "a.png", 32, 32)
    path = coco(
        tmp_path, [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}], [], write_images=False
    )
    assert read(path).images[0].file == tmp_path / "images" / "a.png"
    assert read(path, images=tmp_path / "elsewhere").images[0].width == 32


def test_exif_orientation_gives_the_decoded_size(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    image(tmp_path / "a.jpg", 60, 40, exif=exif.tobytes())
    path = coco(
        tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 60}], [], write_images=False
    )
    record = read(path).images[0]
    assert (record.width, record.height) == (40, 60) and record.header.orientation == 6
