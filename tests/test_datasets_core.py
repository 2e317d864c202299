"""The data interface `train` and `eval` build on: synth, the COCO reader, split_by_id, fingerprint and
decode_image (on small generated files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from headfit.datasets import decode_image, fingerprint, read, split_by_id, synth
from headfit.errors import UsageError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synth(out, images=24, classes=4, size=96, seed=3)
    return out


def test_synth_writes_coco_with_exact_boxes(synthetic):
    train = json.loads((synthetic / "train.json").read_text())
    val = json.loads((synthetic / "val.json").read_text())
    assert len(train["images"]) + len(val["images"]) == 24 and len(val["images"]) == 4
    assert [c["name"] for c in train["categories"]] == ["circle", "square", "triangle", "cross"]
    assert [c["id"] for c in train["categories"]] == [1, 2, 3, 4]
    per_image = {}
    for ann in train["annotations"] + val["annotations"]:
        per_image.setdefault(ann["image_id"], []).append(ann)
    all_ids = {im["id"] for im in train["images"] + val["images"]}
    assert len(all_ids - set(per_image)) >= 2, "some images are empty"
    assert max(len(v) for v in per_image.values()) >= 3, "several objects per image"
    touching = sum(
        a["bbox"][0] == 0
        or a["bbox"][1] == 0
        or a["bbox"][0] + a["bbox"][2] == 96
        or a["bbox"][1] + a["bbox"][3] == 96
        for a in train["annotations"]
    )
    assert touching >= 1, "some objects touch the border"


def test_synth_boxes_are_the_drawn_pixels(synthetic):
    """Each box's edges hold object colour and the rows/columns just outside hold none of its colour."""
    from PIL import Image

    from headfit.datasets.synth import COLOURS

    dataset = read(synthetic / "train.json")
    checked = 0
    for record in dataset.images:
        pixels = np.asarray(Image.open(record.file).convert("RGB")).astype(int)
        for box, cid in zip(record.boxes.astype(int), record.category_ids, strict=True):
            colour = np.array(list(COLOURS.values())[cid - 1])
            close = np.abs(pixels - colour).max(axis=2) <= 12
            x1, y1, x2, y2 = box
            inside = close[y1:y2, x1:x2]
            assert inside[:, 0].any() and inside[:, -1].any() and inside[0].any() and inside[-1].any()
            checked += 1
    assert checked >= 20


def test_synth_is_deterministic_by_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth(a, images=6, classes=2, size=64, seed=7)
    synth(b, images=6, classes=2, size=64, seed=7)
    synth(c, images=6, classes=2, size=64, seed=8)
    assert (a / "train.json").read_bytes() == (b / "train.json").read_bytes()
    assert (a / "images" / "000001.png").read_bytes() == (b / "images" / "000001.png").read_bytes()
    assert (a / "train.json").read_bytes() != (c / "train.json").read_bytes()


@pytest.mark.parametrize("kwargs", [{"classes": 0}, {"classes": 25}, {"images": 1}, {"size": 16}])
def test_synth_refuses_what_it_cannot_draw(tmp_path, kwargs):
    with pytest.raises(UsageError):
        synth(tmp_path, **kwargs)


def test_read_coco_gives_records_in_the_datasets_ids(synthetic):
    dataset = read(synthetic / "train.json")
    assert dataset.format == "coco" and dataset.classes.ids == [1, 2, 3, 4]
    assert dataset.classes.index_of(3) == 2
    document = json.loads((synthetic / "train.json").read_text())
    first = document["images"][0]
    record = next(r for r in dataset.images if r.image_id == first["id"])
    anns = [a for a in document["annotations"] if a["image_id"] == first["id"]]
    assert record.file == synthetic / "images" / first["file_name"]
    assert (record.width, record.height) == (96, 96) and record.declared_size == (96, 96)
    assert record.boxes.dtype == np.float32 and record.boxes.shape == (len(anns), 4)
    x, y, w, h = anns[0]["bbox"]
    assert record.boxes[0].tolist() == [x, y, x + w, y + h]
    assert record.annotation_ids == [a["id"] for a in anns]
    assert dataset.num_annotations == len(document["annotations"])
    empty = next(r for r in dataset.images if r.num_boxes == 0)
    assert empty.boxes.shape == (0, 4) and empty.category_ids.shape == (0,)


def test_a_synth_folder_reads_by_split(synthetic):
    assert len(read(synthetic, split="val").images) == 4
    assert len(read(synthetic).images) == 20  # train.json when no split is named


def test_split_by_id_is_deterministic_and_complete(synthetic):
    dataset = read(synthetic / "train.json")
    train, val = split_by_id(dataset, 0.25)
    assert len(val.images) == 5 and len(train.images) == 15
    assert {r.image_id for r in train.images}.isdisjoint({r.image_id for r in val.images})
    again_train, again_val = split_by_id(read(synthetic / "train.json"), 0.25)
    assert [r.image_id for r in again_val.images] == [r.image_id for r in val.images]
    assert (train.split, val.split) == ("train", "val")
    reordered = read(synthetic / "train.json")
    reordered.images.reverse()
    assert {r.image_id for r in split_by_id(reordered, 0.25)[1].images} == {r.image_id for r in val.images}


def test_split_by_id_needs_two_images(synthetic):
    dataset = read(synthetic / "train.json")
    dataset.images = dataset.images[:1]
    with pytest.raises(UsageError, match="at least 2"):
        split_by_id(dataset)


def test_fingerprint_follows_what_training_uses(synthetic, tmp_path):
    dataset = read(synthetic / "train.json")
    assert fingerprint(dataset) == fingerprint(read(synthetic / "train.json"))
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(synthetic, moved)
    assert fingerprint(read(moved / "train.json")) == fingerprint(dataset), "a moved dataset keeps it"
    nudged = read(synthetic / "train.json")
    boxed = next(r for r in nudged.images if r.num_boxes)
    boxed.boxes = boxed.boxes + np.float32(1)
    assert fingerprint(nudged) != fingerprint(dataset)
    relabelled = read(synthetic / "train.json")
    boxed = next(r for r in relabelled.images if r.num_boxes)
    boxed.category_ids = boxed.category_ids % 4 + 1
    assert fingerprint(relabelled) != fingerprint(dataset)


def test_decode_image_gives_uint8_rgb_for_every_mode(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (10, 14, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.jpg")
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.tif")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(tmp_path / "deep.tif")
    for name in ("rgb.png", "gray.jpg", "rgba.png", "cmyk.jpg", "deep.png", "rgb.tif", "deep.tif"):
        image = decode_image(tmp_path / name)
        assert image.shape == (3, 10, 14) and str(image.dtype) == "torch.uint8", name
    assert decode_image(tmp_path / "rgb.png").numpy().transpose(1, 2, 0).tolist() == rgb.tolist()
    assert decode_image(tmp_path / "rgb.tif").numpy().transpose(1, 2, 0).tolist() == rgb.tolist()
    assert decode_image(tmp_path / "deep.png")[0].numpy().tolist() == rgb[:, :, 0].tolist()
    assert decode_image(tmp_path / "deep.tif")[0].numpy().tolist() == rgb[:, :, 0].tolist()


def test_decode_image_applies_exif_orientation(tmp_path):
    from PIL import Image

    image = Image.fromarray(np.zeros((10, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert tuple(decode_image(tmp_path / "rotated.jpg").shape) == (3, 30, 10)


def test_decode_image_names_a_broken_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(UsageError, match="cannot decode image `.*broken.png`"):
        decode_image(tmp_path / "broken.png")
    with pytest.raises(UsageError, match="cannot read image"):
        decode_image(tmp_path / "absent.png")


def test_reading_never_imports_torch(synthetic):
    code = (
        "import sys; from headfit.datasets import read, split_by_id, fingerprint; "
        f"d = read({str(synthetic / 'train.json')!r}); split_by_id(d); fingerprint(d); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
