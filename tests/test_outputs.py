"""Every file headfit writes survives a full disk: the previous file stays whole, no temporary file
is left behind, and the paragraph says "no space left on the device" (torch's zip writer only says
"file write failed"). Then what a ``--json`` command prints: user code writing to file descriptor 1
(a C extension, a subprocess) cannot break the one JSON document."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from headfit.cli import main
from headfit.errors import UsageError

TINY = """
import torch.nn as nn

def build(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
"""


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
        raise SystemExit(0)
    return info.value.code, " ".join(capsys.readouterr().err.split())


def _coco(folder: Path) -> Path:
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "images" / "a.png")
    document = {
        "images": [{"id": 1, "file_name": "images/a.png", "width": 32, "height": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 40, 10], "area": 1, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "box"}],
    }
    path = folder / "train.json"
    path.write_text(json.dumps(document))
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial")))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_adapt_output_on_a_full_disk_keeps_the_previous_file(capsys, tmp_path, monkeypatch, suffix):
    (tmp_path / "tiny.py").write_text(TINY)
    out = tmp_path / f"m{suffix}"
    out.write_bytes(b"the previous weights")
    monkeypatch.setattr(os, "fsync", _full_disk)
    code, err = run_cli(capsys, "adapt", f"{tmp_path / 'tiny.py'}:build", "-k", "3", "-o", str(out))
    assert code == 2
    assert "no space left on the device" in err and "Traceback" not in err
    assert out.read_bytes() == b"the previous weights"
    assert _leftovers(tmp_path) == []


def test_a_pt_output_whose_zip_writer_fails_says_no_space(capsys, tmp_path, monkeypatch):
    """torch.save on a full disk: ``RuntimeError: [enforce fail ...] file write failed``."""
    (tmp_path / "tiny.py").write_text(TINY)

    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file data/3: file write failed")

    monkeypatch.setattr(torch, "save", failing_save)
    code, err = run_cli(capsys, "adapt", f"{tmp_path / 'tiny.py'}:build", "-k", "3", "-o", str(tmp_path / "m.pt"))
    assert code == 2 and "no space left on the device" in err
    assert not (tmp_path / "m.pt").exists() and _leftovers(tmp_path) == []


def test_data_fix_on_a_full_disk_writes_nothing(capsys, tmp_path, monkeypatch):
    source = _coco(tmp_path / "coco")
    out = tmp_path / "fixed.json"
    monkeypatch.setattr(os, "fsync", _full_disk)
    code, err = run_cli(capsys, "data", "check", str(source), "--fix", str(out))
    assert code == 2, err
    assert "no space left on the device" in err and "no fixed.json was written" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def _predict_results(path: Path) -> None:
    from headfit.evaluation.run import _write_results

    _write_results(path, [{"image_id": 1, "score": 0.5}])


def _predict_image(path: Path) -> None:
    from headfit.evaluation.run import _write_image

    _write_image(torch.zeros(3, 8, 8, dtype=torch.uint8), path)


def _train_state(path: Path) -> None:
    from headfit.train.state import save_state

    save_state(path, {"position": [1, 0, 6]})


def _run_json(path: Path) -> None:
    from headfit.diagnosis import unrecognised
    from headfit.live import _write_report

    _write_report(path, unrecognised("x", "no rule", "RuntimeError"))


@pytest.mark.parametrize(
    ("write", "name"),
    [(_predict_results, "predictions.json"), (_predict_image, "a.png"), (_predict_image, "a.jpg"), (_train_state, "state.pt")],
)
def test_predict_and_train_outputs_on_a_full_disk(tmp_path, monkeypatch, write, name):
    path = tmp_path / name
    path.write_bytes(b"before")
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(UsageError, match=f"no space left on the device.*previous {name} is intact.*Free some disk space"):
        write(path)
    assert path.read_bytes() == b"before" and _leftovers(tmp_path) == []


def test_run_json_path_on_a_full_disk_says_so_on_stderr(tmp_path, monkeypatch, capsys):
    path = tmp_path / "diagnosis.json"
    monkeypatch.setattr(os, "fsync", _full_disk)
    _run_json(path)
    assert "no space left on the device" in capsys.readouterr().err
    assert not path.exists() and _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# --json: one document on stdout whatever the user's code writes to file descriptor 1

NOISY = textwrap.dedent(
    """
    import os, subprocess, sys
    import torch.nn as nn

    os.write(1, b"written to fd 1 on import\\n")

    def build(num_classes=4):
        os.write(1, b"written to fd 1 by the builder\\n")
        subprocess.run([sys.executable, "-c", "print('a subprocess prints')"], check=True)
        print("a print")
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
    """
)


@pytest.mark.parametrize("argv", [["check", "{model}", "--json"], ["check", "{model}", "--json", "--input", "1x3x1x1"]])
def test_writes_to_fd_1_go_to_stderr_under_json(tmp_path, argv):
    (tmp_path / "noisy.py").write_text(NOISY)
    model = f"{tmp_path / 'noisy.py'}:build"
    result = subprocess.run(
        [sys.executable, "-m", "headfit", *[a.format(model=model) for a in argv]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    document = json.loads(result.stdout)  # fails on anything before or after the one document
    assert ("ok" in document) and result.returncode in (0, 1, 2)
    for line in ("written to fd 1 on import", "written to fd 1 by the builder", "a subprocess prints", "a print"):
        assert line in result.stderr
