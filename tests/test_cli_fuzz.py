"""Hypothesis over every command's options: model specs, ``--input`` specs, class counts, paths and
data folders, hostile or not. Whatever is drawn, headfit answers with its exit codes (0 ok, 1
problem found, 2 bad input, 3 explain recognised nothing), never 70 (an internal error) and never
a traceback.

Runs in process through ``headfit.cli.main``; the pools keep each example cheap (a tiny model, a
one-image data set), and ``train`` only gets data it must refuse, so no example trains for real.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from headfit.cli import main

FUZZ = settings(
    max_examples=25,
    deadline=None,  # the first example of a command imports torch and torchvision
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANSWERS = {0, 1, 2, 3}  # never 70 (internal error), never 130 (no one interrupts)


@pytest.fixture(autouse=True, scope="module")
def in_a_scratch_folder(tmp_path_factory):
    """Drawn relative paths (a synth or tile OUT) land in a scratch folder, never in the checkout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> dict[str, str]:
    """Files worth drawing: a tiny model, garbage weights, an empty folder, a one-image COCO set."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fuzz")
    (root / "models.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def build(num_classes=4):
                return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(8, num_classes))
            """
        )
    )
    (root / "junk.pt").write_bytes(bytes(range(256)) * 4)
    (root / "junk.safetensors").write_bytes(b"\xff" * 8 + b"{not json")
    (root / "empty").mkdir()
    (root / "coco" / "images").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "coco" / "images" / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10], "area": 100, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "box"}],
    }
    (root / "coco" / "train.json").write_text(json.dumps(coco))
    return {
        "model": f"{root / 'models.py'}:build",
        "junk_pt": str(root / "junk.pt"),
        "junk_st": str(root / "junk.safetensors"),
        "empty": str(root / "empty"),
        "coco": str(root / "coco" / "train.json"),
        "image": str(root / "coco" / "images" / "a.png"),
        "root": str(root),
    }


text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
input_specs = st.one_of(
    st.text(alphabet="0123456789xX*[],- ", max_size=30),
    st.sampled_from(
        ["1x3x32x32", "[3x32x32]x2", "99999999x3x99999x99999", "[3x80x80]x99999999", "9" * 5000, "0x3x8x8"]
    ),
)
class_counts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1", "3", "2147483647", "2147483648", "1e3", "", "-0", "nan"]),
)


def model_specs(pool: dict[str, str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [
                pool["model"],
                pool["junk_pt"],
                pool["junk_st"],
                pool["empty"],
                pool["coco"],
                "torchvision:nosuch",
                "timm:nosuch",
                "torchvision:",
                ":build",
                "os:getcwd",  # a callable that returns no model (the user named it: it runs, as `python -c` would)
                "nosuch_module_xyz:build",
                pool["model"].replace(":build", ":nosuch"),
            ]
        ),
        text,
        text.map(lambda t: f"torchvision:{t}"),
        text.map(lambda t: f"{t}.py:{t}"),
    )


def paths(pool: dict[str, str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([pool["junk_pt"], pool["junk_st"], pool["empty"], pool["coco"], pool["image"], "/", ""]),
        text,
        text.map(lambda t: str(Path(pool["root"]) / "out" / t)),
    )


def answer(capsys, argv: list[str]) -> int:
    """The exit code of ``headfit ARGV``; stderr must hold no traceback."""
    with pytest.raises(SystemExit) as info:
        main(argv)
        raise SystemExit(0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, (argv, err)
    code = info.value.code
    return code if isinstance(code, int) else 0 if code is None else 1


def options(**drawn: st.SearchStrategy) -> st.SearchStrategy[list[str]]:
    """Some of the named options, each with a drawn value (``None``: a flag without a value)."""

    def flatten(chosen: dict[str, str | None]) -> list[str]:
        argv: list[str] = []
        for name, value in chosen.items():
            argv += [name] if value is None else [name, value]
        return argv

    return st.fixed_dictionaries({}, optional=drawn).map(flatten)


@FUZZ
@given(
    command=st.sampled_from(["check", "sizes"]),
    model=st.one_of(st.none(), st.none(), st.text(max_size=30)),  # None: the tiny model
    inputs=st.lists(input_specs, max_size=2),
    k=st.one_of(st.none(), class_counts),
    as_json=st.booleans(),
)
@example(command="check", model=None, inputs=["99999999x3x99999x99999"], k=None, as_json=False)
@example(command="sizes", model=None, inputs=["[3x80x80]x99999999"], k=None, as_json=True)
@example(command="check", model=None, inputs=["9" * 5000], k="2147483648", as_json=True)
def test_check_and_sizes(capsys, pool, command, model, inputs, k, as_json):
    argv = [command, pool["model"] if model is None else model]
    for spec in inputs:
        argv += ["--input", spec]
    argv += ([] if k is None else ["-k", k]) + (["--json"] if as_json else [])
    assert answer(capsys, argv) in ANSWERS


@FUZZ
@given(data=st.data())
def test_saved_and_odd_models(capsys, pool, data):
    command = data.draw(st.sampled_from(["check", "sizes"]))
    extra = data.draw(options(**{"--input": input_specs, "-k": class_counts, "--json": st.none()}))
    assert answer(capsys, [command, data.draw(model_specs(pool)), *extra]) in ANSWERS


@FUZZ
@given(data=st.data())
def test_adapt(capsys, pool, data):
    model = data.draw(st.one_of(st.just(pool["model"]), st.just(pool["model"]), model_specs(pool)))
    extra = data.draw(
        options(
            **{
                "-k": class_counts,
                "--weights": paths(pool),
                "-o": paths(pool),
                "--keep-classes": text,
                "--class-names": text,
                "--head": text,
                "--num-keypoints": class_counts,
                "--json": st.none(),
            }
        )
    )
    assert answer(capsys, ["adapt", model, *extra]) in ANSWERS


@FUZZ
@given(data=st.data())
def test_data_commands(capsys, pool, data):
    command = data.draw(st.sampled_from(["check", "synth", "tile"]))
    if command == "check":
        argv = [data.draw(paths(pool)), *data.draw(options(**{"--split": text, "--images": paths(pool), "--fix": paths(pool)}))]
    elif command == "synth":
        size = st.sampled_from(["0", "1", "16", "-5", "99999999999", "x"])
        argv = [data.draw(paths(pool)), "--images", data.draw(st.sampled_from(["0", "1", "2", "-1", "1e9"])), "--size", data.draw(size)]
    else:
        argv = [data.draw(paths(pool)), data.draw(paths(pool)), *data.draw(options(**{"--size": class_counts, "--val-fraction": text}))]
    assert answer(capsys, ["data", command, *argv, *data.draw(options(**{"--json": st.none()}))]) in ANSWERS


@FUZZ
@given(data=st.data())
def test_train_refuses_what_it_cannot_use(capsys, pool, data):
    bad_data = st.sampled_from([pool["junk_pt"], pool["empty"], pool["image"], "", str(Path(pool["root"]) / "nosuch.yaml")])
    extra = data.draw(
        options(
            **{
                "--epochs": class_counts,
                "--batch": class_counts,
                "--imgsz": class_counts,
                "--lr": text,
                "--device": text,
                "--workers": class_counts,
                "--resume": paths(pool),
                "--weights": paths(pool),
                "--freeze": text,
            }
        )
    )
    argv = ["train", data.draw(model_specs(pool)), "--data", data.draw(bad_data), "--project", pool["root"], *extra]
    assert answer(capsys, argv) in ANSWERS


@FUZZ
@given(data=st.data())
def test_evaluate_and_predict(capsys, pool, data):
    checkpoint = data.draw(paths(pool))
    if data.draw(st.booleans()):
        argv = ["evaluate", checkpoint, "--data", data.draw(paths(pool))]
        argv += data.draw(options(**{"--batch": class_counts, "--device": text, "--json": st.none()}))
    else:
        argv = ["predict", checkpoint, data.draw(paths(pool)), "--out", str(Path(pool["root"]) / "pred")]
        argv += data.draw(options(**{"--conf": text, "--batch": class_counts, "--json": st.none()}))
    assert answer(capsys, argv) in ANSWERS


@FUZZ
@given(data=st.data())
def test_explain_run_and_demo(capsys, pool, data):
    command = data.draw(st.sampled_from(["explain", "run", "demo"]))
    if command == "explain":
        argv = [data.draw(st.one_of(text, paths(pool))), *data.draw(options(**{"--code": text, "--json": st.none()}))]
    elif command == "run":
        argv = [data.draw(paths(pool))]  # none of them is a Python script that runs
    else:
        argv = ["--out-dir", data.draw(st.sampled_from([pool["junk_pt"], "/proc/nosuch", str(Path(pool["junk_pt"]) / "x")]))]
    assert answer(capsys, [command, *argv]) in ANSWERS
