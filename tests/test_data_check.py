"""`headfit data check`: every problem with the dataset's ids and numbers, notes for what training
handles, stats, one JSON document as the contract gives it, and `--fix OUT` that checks clean."""

from __future__ import annotations

import json
import re

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_support import coco, image, one_image_coco, voc_xml, yolo
from headfit.cli import cli
from headfit.datasets import read
from headfit.datasets.fix import fix
from headfit.datasets.geometry import exif_boxes
from headfit.datasets.lint import lint


def _check(*args: str):
    result = CliRunner().invoke(cli, ["data", "check", *map(str, args)])
    return result.exit_code, result.stdout


def _codes(report) -> list[str]:
    return [p.code for p in report.problems]


# -- problems, with the numbers ------------------------------------------------------------------------


def test_an_out_of_image_box_says_by_how_much_on_each_side(tmp_path):
    report = lint(read(one_image_coco(tmp_path, [[-3, 10, 20, 5], [50, 40, 30, 20]])))
    first, second = report.problems
    assert (first.code, first.image_id, first.annotation_id) == ("HF303", 1, 1)
    assert "by 3 px on the left" in first.summary and "bbox [-3, 10, 20, 5]" in first.summary
    assert "by 16 px on the right and 12 px at the bottom" in second.summary
    assert "x1,y1,x2,y2 = [50, 40, 64, 48]" in second.fix
    assert any("keeps 19% of its area" in f for f in second.facts)


def test_zero_negative_and_entirely_outside_boxes(tmp_path):
    report = lint(read(one_image_coco(tmp_path, [[5, 5, 0, 9], [30, 30, -10, -4], [70, 50, 5, 5]])))
    assert _codes(report) == ["HF301", "HF302", "HF303"]
    assert "zero width" in report.problems[0].summary
    assert "[20, 26, 30, 30]" in report.problems[1].fix
    assert "entirely outside the 64x48 image" in report.problems[2].summary


def test_a_single_box_that_fits_as_corners_says_so_but_is_not_hf304(tmp_path):
    boxes = [[40, 10, 60, 30]] + [[2 + k, 2, 3, 3] for k in range(40)]  # one overflow among true widths
    report = lint(read(one_image_coco(tmp_path, boxes)))
    assert _codes(report) == ["HF303"]
    assert any(
        "read as corners x1,y1,x2,y2 = [40, 10, 60, 30], the bbox would lie inside" in f
        for f in report.problems[0].facts
    )


def test_a_file_of_corner_boxes_is_one_hf304(tmp_path):
    boxes = [[10, 5, 30, 25], [40, 20, 60, 44], [35, 30, 50, 40], [1, 1, 63, 47]]
    report = lint(read(one_image_coco(tmp_path, boxes)))
    assert _codes(report) == ["HF304"] and "2 of 4 boxes leave their image" in report.problems[0].summary


def test_unknown_category_lists_the_known_ones(tmp_path):
    path = coco(
        tmp_path, [{"id": 1, "file_name": "a.png"}], [{"image_id": 1, "bbox": [1, 1, 5, 5], "category_id": 7}]
    )
    (problem,) = lint(read(path)).problems
    assert problem.code == "HF306" and "category id 7" in problem.summary and "it lists 1" in problem.summary


def test_a_string_category_id_is_hf306(tmp_path):
    path = coco(
        tmp_path,
        [{"id": 1, "file_name": "a.png"}],
        [{"image_id": 1, "bbox": [1, 1, 5, 5], "category_id": "1"}],
    )
    assert _codes(lint(read(path))) == ["HF306"]


def test_declared_size_after_an_exif_rotation_is_rotated_by_fix(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60x40, decoded 40x60
    image(tmp_path / "a.jpg", 60, 40, exif=exif.tobytes())
    path = coco(
        tmp_path,
        [{"id": 1, "file_name": "a.jpg", "width": 60, "height": 40}],
        [{"image_id": 1, "bbox": [40, 5, 15, 10]}],
        write_images=False,
    )
    report = lint(read(path))
    assert _codes(report) == ["HF311"]
    assert (
        "declares 60x40, its size as stored; its EXIF orientation 6 turns it to 40x60"
        in report.problems[0].summary
    )
    result = fix(read(path), tmp_path / "fixed.json")
    assert result.clean
    fixed = json.loads((tmp_path / "fixed.json").read_text())
    assert fixed["images"][0]["width"] == 40 and fixed["images"][0]["height"] == 60
    # the stored box x 40..55, y 5..15 turns to x 40-15..40-5 = 25..35, y 40..55
    assert fixed["annotations"][0]["bbox"] == [25.0, 40.0, 10.0, 15.0]


def test_exif_box_moves_match_pil_transposition():
    from PIL import Image, ImageOps

    stored = np.zeros((40, 60), dtype=np.uint8)
    stored[5:15, 40:55] = 255  # the box x1 40, y1 5, x2 55, y2 15
    for orientation in range(1, 9):
        picture = Image.fromarray(stored)
        exif = picture.getexif()
        exif[0x0112] = orientation
        picture.info["exif"] = exif.tobytes()
        shown = np.asarray(ImageOps.exif_transpose(picture))
        ys, xs = np.nonzero(shown)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        moved = exif_boxes(np.array([[40, 5, 55, 15]], dtype=np.float32), orientation, (60, 40))
        assert moved[0].tolist() == expected, orientation


def test_a_resized_image_gets_its_boxes_scaled_by_fix(tmp_path):
    image(tmp_path / "a.png", 32, 24)
    path = coco(
        tmp_path,
        [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        [{"image_id": 1, "bbox": [40, 20, 20, 20]}],
        write_images=False,
    )
    report = lint(read(path))
    assert _codes(report) == ["HF311"] and "scales its boxes by 0.5" in report.problems[0].fix
    fix(read(path), tmp_path / "fixed.json")
    assert json.loads((tmp_path / "fixed.json").read_text())["annotations"][0]["bbox"] == [
        20.0,
        10.0,
        10.0,
        10.0,
    ]


def test_duplicate_annotation_ids_are_renumbered_by_fix(tmp_path):
    path = coco(
        tmp_path,
        [{"id": 1, "file_name": "a.png"}],
        [{"id": 4, "image_id": 1, "bbox": [1, 1, 5, 5]}, {"id": 4, "image_id": 1, "bbox": [9, 9, 5, 5]}],
    )
    assert _codes(lint(read(path))) == ["HF315"]
    result = fix(read(path), tmp_path / "fixed.json")
    assert [a["id"] for a in json.loads((tmp_path / "fixed.json").read_text())["annotations"]] == [4, 5]
    assert result.clean and [c.action for c in result.changes] == ["renumbered"]


def test_yolo_problems_by_line(tmp_path):
    data = yolo(
        tmp_path,
        {"a": "0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n0 32 24 16 12\n0 0.5 0.5\n0 0.95 0.5 0.2 0.2\n"},
        ["cat", "dog"],
    )
    report = lint(read(data))
    assert [(p.code, p.annotation_id) for p in report.problems] == [
        ("HF307", "labels/train/a.txt:2"),
        ("HF314", "labels/train/a.txt:3"),
        ("HF316", "labels/train/a.txt:4"),
        ("HF303", "labels/train/a.txt:5"),
    ]
    assert "indices 0..1" in report.problems[0].summary
    result = fix(read(data), tmp_path / "fixed.json")
    assert result.clean
    boxes = [a["bbox"] for a in json.loads((tmp_path / "fixed.json").read_text())["annotations"]]
    assert [24.0, 18.0, 16.0, 12.0] in boxes  # the pixel line, converted


def test_csv_partly_covering_an_image_is_hf317(tmp_path):
    image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(
        voc_xml("a.png", [("t", (5, 5, 20, 20)), ("t", (30, 5, 50, 20)), ("t", (10, 25, 30, 45))])
    )
    (tmp_path / "part.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\na.png,4,4,20,20,t\n")
    (problem,) = lint(read(tmp_path / "part.csv")).problems
    assert (
        problem.code == "HF317"
        and "has 1 boxes here, but `a.xml` beside it has 3 (1 of these 1 among them)" in problem.summary
    )


# -- notes and stats -----------------------------------------------------------------------------------


def test_notes_for_what_training_handles(tmp_path):
    image(tmp_path / "gray.png", mode="L")
    image(tmp_path / "rgba.png", mode="RGBA")
    image(tmp_path / "deep.png", mode="I;16")
    image(tmp_path / "cmyk.jpg", mode="CMYK")
    image(tmp_path / "scan.tif")
    images = [
        {"id": i, "file_name": n, "width": 64, "height": 48}
        for i, n in enumerate(["gray.png", "rgba.png", "deep.png", "cmyk.jpg", "scan.tif"], 1)
    ]
    anns = [
        {"image_id": 1, "bbox": [1, 1, 5, 5], "category_id": 0},
        {"image_id": 2, "bbox": [1, 1, 5, 5], "category_id": 7, "iscrowd": 1},
    ]
    path = coco(
        tmp_path,
        images,
        anns,
        [{"id": 0, "name": "person"}, {"id": 3, "name": "car"}, {"id": 7, "name": "bike"}],
        write_images=False,
    )
    report = lint(read(path))
    assert report.ok, report.problems
    text = "\n".join(report.notes)
    assert "1 grayscale" in text and "1 RGBA" in text and "1 16-bit" in text and "1 CMYK" in text
    assert "1 TIFF" in text
    assert "3 images without boxes (3, 4, 5)" in text
    assert "1 crowd boxes" in text
    assert "category ids have gaps (0, 3, 7)" in text and "0 -> 0, 3 -> 1, 7 -> 2" in text
    assert "category id 0 (`person`) is an object class" in text
    assert "`car` (id 3)" in text  # a class without any box


def test_stats_size_the_post_processing_and_the_evaluation(tmp_path):
    images = [{"id": i, "file_name": f"{i}.png", "width": 200, "height": 200} for i in range(1, 4)]
    anns = [{"image_id": 1, "bbox": [0, 0, 5, 5]}] * 120 + [
        {"image_id": 2, "bbox": [0, 0, 50, 50]},
        {"image_id": 2, "bbox": [0, 0, 150, 150], "category_id": 2},
    ]
    anns = [dict(a) for a in anns]
    path = coco(tmp_path, images, anns, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    report = lint(read(path))
    stats = report.stats
    assert (stats.images, stats.annotations, stats.classes, stats.negatives) == (3, 122, 2, 1)
    assert (stats.boxes_per_image_max, stats.small, stats.medium, stats.large) == (120, 120, 1, 1)
    assert [(c.name, c.boxes, c.images) for c in stats.per_class] == [("a", 121, 2), ("b", 1, 1)]
    assert stats.image_sizes == [(200, 200, 3)]
    assert any("more than 100 boxes" in n and "at least 120" in n for n in report.notes)


# -- the CLI: exit codes, JSON, rendering --------------------------------------------------------------


def test_json_is_the_contract_document(tmp_path):
    path = one_image_coco(tmp_path, [[50, 40, 30, 20], [1, 1, 5, 5]])
    code, out = _check(path, "--json")
    document = json.loads(out)
    assert code == 1 and set(document) == {"ok", "problems", "notes", "stats"} and document["ok"] is False
    (problem,) = document["problems"]
    assert set(problem) == {"code", "image_id", "annotation_id", "file", "summary", "fix"}
    assert (problem["code"], problem["image_id"], problem["annotation_id"]) == ("HF303", 1, 1)
    assert problem["file"].endswith("a.png")
    assert {"images", "annotations", "classes"} <= set(document["stats"])
    assert document["stats"]["annotations"] == 2


def test_a_clean_dataset_exits_0(tmp_path):
    code, out = _check(one_image_coco(tmp_path, [[1, 1, 5, 5]]))
    assert code == 0 and "ok: no problem found" in out


def test_the_terminal_groups_problems_and_says_how_many_more(tmp_path):
    path = one_image_coco(tmp_path, [[60, 1, 10, 5]] * 8)
    code, out = _check(path)
    assert code == 1
    assert out.count("error[HF303]") == 5 and "... and 3 more HF303 problems (`--json` lists all)" in out
    assert "8 problems found" in out and "(HF303 x8)" in " ".join(out.split())
    assert re.search(r"boxes per image\s+│ max 8, p99 8", out)


def test_fix_writes_a_clean_copy_and_never_the_original(tmp_path):
    path = one_image_coco(tmp_path, [[60, 1, 10, 5], [5, 5, 0, 5]])
    original = path.read_bytes()
    code, out = _check(path, "--fix", tmp_path / "out" / "fixed.json")
    assert code == 1, "the exit code describes DATA"
    assert "1 clipped, 1 dropped" in out and "checks clean" in out
    assert path.read_bytes() == original
    assert _check(tmp_path / "out" / "fixed.json")[0] == 0
    code, out = _check(path, "--fix", path)
    assert code == 2 and out == ""
    assert path.read_bytes() == original


def test_fix_converts_voc_and_csv_to_coco(tmp_path):
    image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(voc_xml("a.png", [("dog", (1, 1, 10, 20)), ("cat", (50, 40, 70, 48))]))
    result = fix(read(tmp_path / "a.xml"), tmp_path / "fixed.json")
    document = json.loads((tmp_path / "fixed.json").read_text())
    assert result.clean and document["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert document["images"][0]["file_name"] == "a.png"
    assert sorted(a["bbox"] for a in document["annotations"]) == [
        [0.0, 0.0, 10.0, 20.0],
        [49.0, 39.0, 15.0, 9.0],
    ]


# -- any broken COCO file: fix makes it clean, and a clean file reads back as written ---------------------

BOX = st.lists(st.floats(-80, 140, allow_nan=False, width=32), min_size=4, max_size=4)
ANNOTATION = st.fixed_dictionaries(
    {
        "image_id": st.integers(1, 4),
        "category_id": st.sampled_from([1, 2, 9]),
        "bbox": st.one_of(BOX, st.just([1, 2])),
    }
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    annotations=st.lists(ANNOTATION, max_size=14),
    declared=st.lists(st.sampled_from([(64, 48), (128, 96), (48, 64), (30, 30)]), min_size=3, max_size=3),
    duplicate_ids=st.booleans(),
)
def test_fix_always_checks_clean(tmp_path_factory, annotations, declared, duplicate_ids):
    folder = tmp_path_factory.mktemp("broken")
    for k in (1, 2, 3):
        image(folder / f"{k}.png")
    images = [
        {"id": k, "file_name": f"{k}.png", "width": w, "height": h} for k, (w, h) in enumerate(declared, 1)
    ]
    anns = [dict(a, id=1 if duplicate_ids else k + 1) for k, a in enumerate(annotations)]
    path = coco(folder, images, anns, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], write_images=False)
    result = fix(read(path), folder / "fixed.json")
    assert result.clean, [p.summary for p in result.remaining]
    assert not lint(read(folder / "fixed.json")).problems


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.floats(0, 50, width=32),
            st.floats(0, 30, width=32),
            st.floats(0.25, 14, width=32),
            st.floats(0.25, 18, width=32),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_clean_boxes_survive_write_and_read_exactly(tmp_path_factory, boxes):
    folder = tmp_path_factory.mktemp("clean")
    path = one_image_coco(folder, [list(b) for b in boxes])
    dataset = read(path)
    assert lint(dataset).ok
    fix(dataset, folder / "again.json")
    again = read(folder / "again.json")
    assert np.array_equal(again.images[0].boxes, dataset.images[0].boxes)
