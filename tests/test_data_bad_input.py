"""Input `data check` cannot read: one paragraph naming what was expected, exit 2, no traceback, no
hang (a 2 GB file is refused by its size, before it is parsed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from data_support import image, one_image_coco, yolo
from headfit.cli import main


def _check(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(["data", "check", *map(str, args)])
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


def _one_paragraph(err: str) -> str:
    assert err.startswith("error: ") and "Traceback" not in err
    return " ".join(err.split())


def test_a_missing_path(capsys, tmp_path):
    code, _, err = _check(capsys, tmp_path / "nothing.json")
    assert code == 2 and "`" + str(tmp_path / "nothing.json") + "` does not exist" in _one_paragraph(err)


def test_json_that_is_not_coco(capsys, tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"info": {}, "licenses": [], "annotations": []}))
    code, _, err = _check(capsys, tmp_path / "labels.json")
    text = _one_paragraph(err)
    assert (
        code == 2
        and "is JSON but not a COCO instances file: it has `info`, `licenses`, `annotations`" in text
    )
    assert "lacks a list under `images`, `categories`" in text


def test_a_coco_results_file(capsys, tmp_path):
    (tmp_path / "results.json").write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}]))
    code, _, err = _check(capsys, tmp_path / "results.json")
    assert code == 2 and "COCO results file" in _one_paragraph(err)


@pytest.mark.parametrize(
    ("content", "says"), [('{"images": [', "not valid JSON"), ("\x89PNG....", "is not JSON")]
)
def test_broken_json(capsys, tmp_path, content, says):
    (tmp_path / "data.json").write_text(content)
    code, _, err = _check(capsys, tmp_path / "data.json")
    assert code == 2 and says in _one_paragraph(err)


def test_yaml_without_names(capsys, tmp_path):
    yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, ["cat"])
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnc: 2\n")
    code, _, err = _check(capsys, tmp_path / "data.yaml")
    assert code == 2 and "has no `names` (it says `nc: 2`)" in _one_paragraph(err)


def test_yaml_that_is_not_yaml(capsys, tmp_path):
    (tmp_path / "data.yaml").write_text("names: [a, b\ntrain: [\n")
    code, _, err = _check(capsys, tmp_path / "data.yaml")
    assert code == 2 and "is not valid YAML" in _one_paragraph(err)


def test_an_image_folder_with_no_images(capsys, tmp_path):
    path = one_image_coco(tmp_path / "data", [[1, 1, 5, 5]])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no images here")
    code, _, err = _check(capsys, path, "--images", tmp_path / "empty")
    assert code == 2 and "holds no images" in _one_paragraph(err)


def test_a_yolo_split_folder_with_no_images(capsys, tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [cat]\n")
    code, _, err = _check(capsys, tmp_path / "data.yaml")
    assert code == 2 and "holds no images" in _one_paragraph(err)


def test_not_one_image_found_is_one_paragraph_not_n_problems(capsys, tmp_path):
    path = one_image_coco(tmp_path, [[1, 1, 5, 5]])
    (tmp_path / "a.png").unlink()
    code, _, err = _check(capsys, path)
    text = _one_paragraph(err)
    assert code == 2 and "none of the 1 images" in text and "--images DIR" in text


def test_a_folder_without_annotations(capsys, tmp_path):
    image(tmp_path / "a.png")
    code, _, err = _check(capsys, tmp_path)
    assert code == 2 and "without annotations headfit recognises" in _one_paragraph(err)


def test_a_csv_without_the_columns(capsys, tmp_path):
    (tmp_path / "boxes.csv").write_text("file,x,y\na.png,1,2\n")
    code, _, err = _check(capsys, tmp_path / "boxes.csv")
    assert code == 2 and "image_path,xmin,ymin,xmax,ymax,label" in _one_paragraph(err)


def test_fix_into_a_folder_is_refused(capsys, tmp_path):
    path = one_image_coco(tmp_path, [[1, 1, 5, 5]])
    code, _, err = _check(capsys, path, "--fix", tmp_path)
    assert code == 2 and "is a folder" in _one_paragraph(err)


@pytest.mark.parametrize("command", ["synth", "tile"])
def test_an_output_folder_that_is_a_file_is_refused(capsys, tmp_path, command):
    existing = tmp_path / "junk.pt"
    existing.write_bytes(b"not a folder")
    source = [str(one_image_coco(tmp_path, [[1, 1, 5, 5]]))] if command == "tile" else []
    with pytest.raises(SystemExit) as stopped:
        main(["data", command, *source, str(existing)])
    _, err = capsys.readouterr()
    assert stopped.value.code == 2 and "is a file, not a folder" in _one_paragraph(err)
    assert existing.read_bytes() == b"not a folder"


def test_a_synth_size_past_memory_is_refused_before_drawing(capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(["data", "synth", str(tmp_path / "out"), "--images", "2", "--size", "99999999999"])
    _, err = capsys.readouterr()
    assert stopped.value.code == 2 and "32x32 to 4096x4096 pixels" in _one_paragraph(err)
    assert not (tmp_path / "out" / "images").exists() or not any((tmp_path / "out" / "images").iterdir())


def test_bad_input_with_json_is_one_error_document(capsys, tmp_path):
    code, out, _ = _check(capsys, tmp_path / "nothing.json", "--json")
    document = json.loads(out)
    assert code == 2 and document["ok"] is False and document["error"]["exit_code"] == 2


def test_a_2_gb_json_is_refused_at_once_without_reading_it(tmp_path):
    big = tmp_path / "huge.json"
    with open(big, "wb") as file:  # sparse: no disk, no memory
        file.write(b'{"images": [')
        file.truncate(2 * 1024**3)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "headfit", "data", "check", str(big)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.perf_counter() - start < 20
    assert done.returncode == 2 and "Traceback" not in done.stderr
    text = " ".join(done.stderr.split())
    assert "`" + str(big) + "` is 2.1 GB" in text and "Split it" in text
