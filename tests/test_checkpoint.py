"""``save_detector`` / ``load_detector``: the round trip, the class map, trust, atomic writes, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from headfit.checkpoint import load_detector, save_detector
from headfit.datasets.records import ClassMap
from headfit.errors import HeadfitError, UntrustedCodeError, UsageError
from tiny_models import CLASSIFIER_SPEC, SPEC, one_thread, tiny_fcos

CLASSES = ClassMap(ids=[1, 3, 7], names=["car", "person", "tree"])


@pytest.fixture(autouse=True)
def torch_on_one_thread():
    with one_thread():
        yield


def saved_fcos(tmp_path: Path, name: str = "best.safetensors", **extra) -> tuple[Path, torch.nn.Module]:
    from headfit import adapt

    model = adapt(tiny_fcos(), 3, verify=False)
    torch.nn.init.normal_(model.head.classification_head.cls_logits.weight)  # weights a rebuild cannot guess
    path = tmp_path / name
    save_detector(model, path, spec=SPEC, classes=CLASSES, image_size=96, extra=extra or None)
    return path, model


def test_the_round_trip_gives_the_same_model_class_map_and_image_size(tmp_path):
    path, model = saved_fcos(tmp_path, epoch=4)
    loaded = load_detector(path, trust_code=True)
    assert loaded.classes.ids == [1, 3, 7] and loaded.classes.names == ["car", "person", "tree"]
    assert loaded.image_size == 96 and loaded.spec == SPEC and not loaded.model.training
    assert loaded.model.transform.min_size == (96,) and loaded.model.transform.max_size == 96
    saved = model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in loaded.model.state_dict().items())
    sidecar = json.loads(Path(f"{path}.json").read_text())
    assert sidecar["class_map"] == {"ids": [1, 3, 7], "names": ["car", "person", "tree"]}
    assert sidecar["epoch"] == 4 and sidecar["num_classes"] == 3 and sidecar["background"] is False
    assert load_detector(Path(f"{path}.json"), trust_code=True).classes.names == CLASSES.names


def test_a_saved_detector_rebuilds_for_check(tmp_path):
    from headfit.saved import load_model

    path, _ = saved_fcos(tmp_path)
    rebuilt = load_model(str(path), device="meta", trust_code=True)
    assert rebuilt.head.classification_head.num_classes == 3


def test_a_torchvision_builder_loads_without_trust_and_keeps_its_background(tmp_path):
    from headfit import adapt
    from headfit.spec import build_model

    model = adapt(build_model("torchvision:ssdlite320_mobilenet_v3_large"), 3, verify=False)
    path = tmp_path / "ssd.safetensors"
    save_detector(
        model, path, spec="torchvision:ssdlite320_mobilenet_v3_large", classes=CLASSES, image_size=None
    )
    loaded = load_detector(path)
    assert loaded.sidecar["background"] is True and loaded.sidecar["head_outputs"] == 4
    assert loaded.image_size is None and loaded.model.transform.fixed_size == (320, 320)


def test_user_code_needs_trust(tmp_path):
    path, _ = saved_fcos(tmp_path)
    with pytest.raises(UntrustedCodeError) as info:
        load_detector(path)
    message = " ".join(str(info.value).split())
    assert "would run the Python file" in message and "tiny_models.py" in message and "`tiny_fcos`" in message
    assert "--trust-code" in message


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path, _ = saved_fcos(tmp_path)
    before = path.read_bytes(), Path(f"{path}.json").read_text()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    with pytest.raises(UsageError, match="no space left on the device"):
        saved_fcos(tmp_path)
    assert (path.read_bytes(), Path(f"{path}.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "best.safetensors.json"]


def test_saving_refuses_a_class_map_the_heads_do_not_have(tmp_path):
    with pytest.raises(UsageError, match=r"heads predict 91 classes but the class map has 3"):
        save_detector(tiny_fcos(), tmp_path / "x.safetensors", spec=SPEC, classes=CLASSES, image_size=None)
    with pytest.raises(UsageError, match=r"written as `.safetensors`, not 'x.pt'"):
        save_detector(tiny_fcos(), tmp_path / "x.pt", spec=SPEC, classes=CLASSES, image_size=None)


def test_bad_checkpoints_are_one_paragraph(tmp_path):
    path, _ = saved_fcos(tmp_path)
    with pytest.raises(
        UsageError, match=r"is a folder: give the checkpoint file inside it; it holds best.safetensors"
    ):
        load_detector(tmp_path)
    with pytest.raises(UsageError, match=r"does not exist"):
        load_detector(tmp_path / "nope.safetensors")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(UsageError, match=r"is not a headfit checkpoint"):
        load_detector(notes)
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes(path.read_bytes())
    with pytest.raises(HeadfitError, match=r"has no sidecar 'alone.safetensors.json'"):
        load_detector(alone)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    Path(f"{garbage}.json").write_text(Path(f"{path}.json").read_text())
    with pytest.raises(HeadfitError, match=r"cannot read .*garbage.safetensors"):
        load_detector(garbage, trust_code=True)


def test_a_classifier_is_not_a_detector(tmp_path):
    from headfit.saved import adapt_file

    out = tmp_path / "cls.safetensors"
    adapt_file(CLASSIFIER_SPEC, 2, out)
    with pytest.raises(UsageError, match=r"holds a `Sequential` .* not an object detector"):
        load_detector(out, trust_code=True)
