"""`headfit demo`: the FCOS mistake reproduced, explained, checked, adapted and re-checked, all live."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_reproduces_diagnoses_and_fixes_the_fcos_mistake(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "headfit", "demo", "--json", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    assert doc["error"] == "RuntimeError: shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512"

    top = doc["diagnosis"]["causes"][0]
    assert doc["diagnosis"]["code"] == "HF101"
    assert (top["module"], top["attribute"]) == ("head.classification_head", "num_classes")
    assert top["fix"] == "model.head.classification_head.num_classes = 2"
    assert "64,512 / (2*168*96) = 2 channels per location" in doc["diagnosis"]["facts"]

    broken = doc["broken_check"]
    assert broken["ok"] is False
    assert ("HF201", "head.classification_head", "num_classes") in {
        (p["code"], p["module"], p["attribute"]) for p in broken["problems"]
    }
    assert broken["trace"]["stopped_at"] == "head.classification_head"

    adapted = doc["adapt"]["adapt"]
    assert adapted["replaced"] == ["head.classification_head.cls_logits"]
    assert adapted["attributes"] == {"head.classification_head.num_classes": 2}
    assert doc["adapt"]["adapt"]["verification"]["ok"] is True
    assert doc["fixed_check"]["ok"] is True and doc["fixed_check"]["trace"]["completed"] is True
    assert (tmp_path / "fcos2.safetensors").is_file() and (tmp_path / "coco.pth").is_file()

    tune = doc["finetune"]  # the happy ending: a short `headfit train` of a small FCOS
    assert tune["rising"] is True and tune["rows"][-1]["val_AP50"] > tune["rows"][0]["val_AP50"]
    assert (Path(tune["run"]) / "best.safetensors").is_file() and tune["steps"] >= 10
