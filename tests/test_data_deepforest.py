"""Real data: the deepforest wheel's annotated aerial images (VOC xml and CSV files, never imported),
with their real oddities: an xml naming a .tif beside a .png twin, a CSV covering part of an image's
boxes, images with more than 100 boxes. And the tiles that turn its two large crops into a train/val set."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from headfit.cli import cli
from headfit.datasets import read
from headfit.datasets.fix import fix
from headfit.datasets.lint import lint
from headfit.datasets.tile import tile


def _deepforest_data() -> Path | None:
    try:
        folder = Path(importlib.metadata.distribution("deepforest").locate_file("deepforest/data"))
    except importlib.metadata.PackageNotFoundError:
        return None
    return folder if (folder / "OSBS_029.xml").exists() else None


DATA = _deepforest_data()
pytestmark = pytest.mark.skipif(
    DATA is None,
    reason="the deepforest wheel is not installed: pip install --no-deps deepforest==2.1.0 (.ci/run does)",
)


def test_the_voc_folder_reads_every_xml_and_checks_clean():
    dataset = read(DATA)
    assert dataset.format == "voc" and dataset.classes.names == ["Alive", "Dead", "Tree"]
    counts = {r.image_id: r.num_boxes for r in dataset.images}
    assert counts == {
        "2019_YELL_2_528000_4978000_image_crop2": 574,
        "2019_YELL_2_541000_4977000_image_crop": 279,
        "OSBS_029": 61,
        "SOAP_061": 37,
    }
    sizes = {r.image_id: (r.width, r.height) for r in dataset.images}
    assert sizes["2019_YELL_2_528000_4978000_image_crop2"] == (2299, 2472)
    report = lint(dataset)
    assert report.ok, [p.summary for p in report.problems]
    notes = "\n".join(report.notes)
    assert "1-based" in notes
    assert "2 images have more than 100 boxes" in notes and "at least 574" in notes
    assert "`OSBS_029.tif` / `OSBS_029.png`" in notes  # the xml names the .tif; its .png twin is beside it
    assert "1 TIFF" in notes
    assert report.stats.boxes_per_image_max == 574


def test_the_xml_naming_a_tif_reads_the_tif():
    record = read(DATA / "OSBS_029.xml").images[0]
    assert record.file.name == "OSBS_029.tif" and record.header.format == "TIFF" and record.width == 400


def test_a_csv_covering_part_of_an_image_is_hf317():
    report = lint(read(DATA / "example.csv"))
    (problem,) = report.problems
    assert problem.code == "HF317" and problem.image_id == "2019_YELL_2_541000_4977000_image_crop.png"
    assert (
        "has 79 boxes here, but `2019_YELL_2_541000_4977000_image_crop.xml` beside it has 279"
        in problem.summary
    )
    assert "(77 of these 79 among them)" in problem.summary


@pytest.mark.parametrize("name", ["OSBS_029.csv", "testfile_deepforest.csv", "testfile_multi.csv"])
def test_the_complete_csvs_check_clean(name):
    report = lint(read(DATA / name))
    assert report.ok, [p.summary for p in report.problems]


def test_the_two_class_csv_keeps_its_labels():
    report = lint(read(DATA / "testfile_multi.csv"))
    assert [(c.name, c.boxes) for c in report.stats.per_class] == [("Alive", 9), ("Dead", 28)]


def test_fix_on_the_partial_csv_leaves_the_image_out(tmp_path):
    result = fix(read(DATA / "example.csv"), tmp_path / "fixed.json")
    assert result.clean and result.images == 0
    assert [c.code for c in result.changes] == ["HF317"]


def test_data_check_on_the_folder_from_the_command_line():
    result = CliRunner().invoke(cli, ["data", "check", str(DATA)])
    assert result.exit_code == 0, result.stdout
    assert "ok: no problem found" in result.stdout and "574" in result.stdout


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiles")
    return out, tile(read(DATA), out, size=400)


def test_tiles_cover_the_large_crops_exactly(tiles):
    out, result = tiles
    train, val = (json.loads((out / f"{s}.json").read_text()) for s in ("train", "val"))
    # 2299x2472 -> 6 x 7 tiles, 1249x1035 -> 4 x 3, each 400x400 crop one tile
    assert result.tiles_train + result.tiles_val == 42 + 12 + 2 == len(train["images"]) + len(val["images"])
    assert all((im["width"], im["height"]) == (400, 400) for im in train["images"] + val["images"])
    assert result.slivers_dropped > 0 and result.boxes_clipped > 0
    assert result.boxes_kept == len(train["annotations"]) + len(val["annotations"])
    for split in (train, val):
        for ann in split["annotations"]:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 400 and y + h <= 400 and w > 0 and h > 0
    assert lint(read(out / "train.json")).ok and lint(read(out / "val.json")).ok


def test_val_tiles_share_no_pixel_with_train_and_keep_every_class_in_train(tiles):
    out, _ = tiles
    train, val = (json.loads((out / f"{s}.json").read_text()) for s in ("train", "val"))

    def origin(name):
        stem, x, y = name.removesuffix(".png").rsplit("_", 2)
        return stem, int(x[1:]), int(y[1:])

    for v in val["images"]:
        vs, vx, vy = origin(v["file_name"].split("/")[-1])
        for t in train["images"]:
            ts, tx, ty = origin(t["file_name"].split("/")[-1])
            assert not (vs == ts and abs(vx - tx) < 400 and abs(vy - ty) < 400), (
                v["file_name"],
                t["file_name"],
            )
    per_class = {c["name"]: c["boxes"] for c in lint(read(out / "train.json")).stats.to_dict()["per_class"]}
    assert all(per_class[n] > 0 for n in ("Alive", "Dead", "Tree"))


def test_tiling_is_deterministic(tmp_path):
    from headfit.datasets.records import DetectionDataset

    dataset = read(DATA)
    small = DetectionDataset(
        [r for r in dataset.images if r.width < 2000], dataset.classes, dataset.source, "voc"
    )
    first, second = tmp_path / "a", tmp_path / "b"
    tile(small, first, size=400)
    tile(small, second, size=400)
    assert (first / "train.json").read_text() == (second / "train.json").read_text()
    assert (first / "val.json").read_text() == (second / "val.json").read_text()
