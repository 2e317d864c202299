"""`headfit train` details: `--weights` follows adapt's partial-load rule, the closing `evaluate` hint
can be pasted as printed, and `--freeze` keeps a frozen part's BatchNorm statistics."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from headfit.cli import cli
from headfit.datasets import read, synth
from headfit.errors import CheckpointError
from headfit.spec import build_model
from headfit.train.loop import FitResult
from headfit.train.prepare import TrainOptions, prepare
from headfit.train.report import render_result
from tiny_models import one_thread

OWN = str(Path(__file__).parent / "data" / "own_fcos.py") + ":build"


@pytest.fixture(autouse=True)
def torch_on_one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    synth(folder, images=10, classes=2, size=64, seed=4)
    return folder


def options(data: Path, project: Path, **given) -> TrainOptions:
    return TrainOptions(model=OWN, data=data, imgsz=64, batch=2, workers=0, project=project, **given)


def test_weights_that_leave_a_tensor_outside_the_head_random_need_partial_load(shapes, tmp_path):
    state = build_model(OWN).state_dict()
    del state["backbone.features.1.0.weight"]
    checkpoint = tmp_path / "no-conv.pt"
    torch.save(state, checkpoint)
    with pytest.raises(CheckpointError) as found:
        prepare(options(shapes, tmp_path / "a", weights=checkpoint))
    message = str(found.value)
    assert "1 are not in it (e.g. `backbone.features.1.0.weight`)" in message and "--partial-load" in message
    assert not (tmp_path / "a").exists()  # refused before the run directory

    prepared = prepare(options(shapes, tmp_path / "b", weights=checkpoint, partial_load=True))
    assert any(n.startswith("--partial-load: 1 tensors outside the new head") for n in prepared.plan.notes)


def test_the_evaluate_hint_names_the_val_data_and_can_be_pasted(shapes, tmp_path):
    # val held out of one COCO file by image id: the run writes those images as RUN/val.json
    prepared = prepare(options(shapes / "train.json", tmp_path))
    run = prepared.plan.run
    command = prepared.plan.evaluate
    assert command == f"headfit evaluate {run}/best.safetensors --data {run}/val.json --trust-code"
    held_out = read(run / "val.json")
    val = prepared.trainer.task.setup.val
    assert sorted(r.file.resolve() for r in held_out.images) == sorted(r.file.resolve() for r in val.images)
    result = FitResult(run=run, epochs_done=1, best_epoch=1)
    assert f"  evaluate it: `{command}`" in render_result(result, command)

    task = prepared.trainer.task
    task.save_model(prepared.trainer.model, run / "best.safetensors", {"epoch": 1})
    pasted = CliRunner().invoke(cli, shlex.split(command)[1:])
    assert pasted.exit_code == 0, pasted.output

    # a val split of its own is named as it is
    assert prepare(options(shapes, tmp_path)).plan.evaluate.endswith(f"--data {shapes}/val.json --trust-code")


def test_a_frozen_backbone_keeps_its_batchnorm_statistics(shapes, tmp_path):
    prepared = prepare(options(shapes, tmp_path, freeze=("backbone",)))
    trainer = prepared.trainer
    norms = [m for m in trainer.model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 4
    before = [n.running_mean.clone() for n in norms]
    trainer.model.train()  # what the loop does each epoch
    assert not any(n.training for n in norms) and trainer.model.head.training
    trainer._step(next(iter(trainer.task.batches(0, 0))))
    assert all(torch.equal(a, n.running_mean) for a, n in zip(before, norms, strict=True))
    assert int(norms[0].num_batches_tracked) == 0
    copied = copy.deepcopy(trainer.model)  # the EMA's copy keeps the rule
    copied.train()
    assert not any(m.training for m in copied.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert "4 BatchNorm layer(s) keep their running statistics" in next(
        c.value for c in prepared.plan.choices if c.topic == "frozen"
    )
