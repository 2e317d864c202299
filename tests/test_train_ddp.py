"""`headfit train` data-parallel under torchrun: 2 gloo processes on the CPU, started through
`python -m torch.distributed.run` (torchrun's own entry point), and the launches it refuses.

The tiny FCOS of `headfit.train.tiny` at 64 px trains fastest; each torchrun launch costs two cold
starts of torch (most of its time on this machine)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from headfit.cli import cli
from headfit.datasets import read, synth
from headfit.errors import UsageError
from headfit.train import distributed
from headfit.train.resume import prepare_resume
from headfit.train.world import RankFailed, StopNote, World

TINY = "headfit.train.tiny:tiny_fcos"
RANKS = str(Path(__file__).parent / "data" / "ddp_ranks.py")
SMALL = ["--imgsz", "64", "--workers", "0", "--lr", "0.02", "--seed", "3"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    synth(folder, images=16, classes=2, size=64, seed=1)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240):
    """``headfit train ARGS`` on 2 processes; (exit code, output, seconds, each rank's record)."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master-port", str(free_port()), RANKS, str(out), *args,
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout)
    seconds = time.perf_counter() - started
    records = {int(p.stem[4:]): json.loads(p.read_text()) for p in out.glob("rank*.json")}
    return done.returncode, done.stdout + done.stderr, seconds, records


@pytest.fixture(scope="module")
def two_ranks(shapes, tmp_path_factory):
    """A 2-epoch run on 2 processes, batch 4 (2 per process)."""
    root = tmp_path_factory.mktemp("ddp")
    project = root / "runs"
    code, output, _, records = torchrun(
        root / "ranks", TINY, "--data", str(shapes), "--batch", "4", "--epochs", "2",
        "--project", str(project), *SMALL,
    )  # fmt: skip
    assert code == 0, output
    return project, output, records


def test_two_ranks_train_the_same_weights_into_one_run_directory(two_ranks):
    project, output, records = two_ranks
    assert sorted(records) == [0, 1]
    assert records[0]["steps"] == records[1]["steps"] == 8  # ceil(13 train images / 4) x 2 epochs
    assert records[0]["hash"] == records[1]["hash"]  # weights and BatchNorm statistics alike
    assert [p.name for p in project.iterdir()] == ["exp"]  # rank 1 made no exp2
    assert records[0]["run"] == records[1]["run"] == str(project / "exp")
    args = json.loads((project / "exp" / "args.json").read_text())
    assert args["world_size"] == 2 and args["total_batch"] == 4 and args["batch_per_process"] == 2
    assert len((project / "exp" / "metrics.csv").read_text().splitlines()) == 3
    # one plan and one result: rank 1 prints nothing
    assert output.count("4 = 2 processes x 2") == 1 and output.count("done: 2 epoch(s)") == 1
    assert "DistributedDataParallel over gloo" in output


def test_resume_on_another_world_size_says_what_it_rescaled(two_ranks):
    project, _, _ = two_ranks
    prepared = prepare_resume(project / "exp", {"epochs": 3}, trust_code=True)  # this process: world size 1
    assert (
        "resumed on 1 process(es); the run trained on 2: the total batch stays 4, now 4 per process (was 2), "
        "so the lr, the steps per epoch and the order of the images are those of the run"
    ) in prepared.plan.notes
    assert prepared.trainer.steps_per_epoch == 4 and prepared.trainer.position.step == 8
    assert json.loads((project / "exp" / "args.json").read_text())["world_size"] == 1


@pytest.mark.slow
def test_two_processes_of_batch_2_reach_the_loss_of_one_process_of_batch_4(shapes, tmp_path):
    """The same images in every step (one order, cut per rank) and DDP's mean of the gradients give
    the first epoch's mean loss within 1%. They are not equal, and drift apart over more steps
    (measured: epoch 1 2.7240 vs 2.7202, epoch 2 1.79 vs 2.15 at lr 0.005), because the model
    normalises per process: BatchNorm's statistics come from 2 images instead of 4, and FCOS divides
    its losses by the foreground count of each process's images. Each step's gradient differs a
    little, and in a tiny net on 13 images the difference compounds; hence epoch 1 only."""
    common = [TINY, "--data", str(shapes), "--batch", "4", "--epochs", "2", "--no-jitter", *SMALL, "--lr", "0.005"]
    code, output, _, _ = torchrun(tmp_path / "r", *common, "--project", str(tmp_path / "two"))
    assert code == 0, output
    one = CliRunner().invoke(cli, ["train", *common, "--project", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output

    def losses(project: Path) -> list[float]:
        lines = (project / "exp" / "metrics.csv").read_text().splitlines()
        column = lines[0].split(",").index("train_loss")
        return [float(line.split(",")[column]) for line in lines[1:]]

    two, single = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert two[0] == pytest.approx(single[0], rel=0.01), (two, single)


def test_a_killed_rank_ends_the_other_with_a_paragraph_not_a_hang(shapes, tmp_path):
    code, output, seconds, records = torchrun(
        tmp_path / "r", TINY, "--data", str(shapes), "--batch", "4", "--epochs", "2",
        "--project", str(tmp_path / "runs"), "--dist-timeout", "30", *SMALL,
        env={"KILL_RANK": "1", "KILL_AT": "3"},
    )  # fmt: skip
    assert code != 0
    assert 1 not in records and records[0]["steps"] == 2  # rank 0 stopped at the step rank 1 died in
    assert "rank 0 of 2 lost the other processes" in output or "rank 0 of 2 was ended by SIGTERM" in output
    assert "headfit/train" not in output  # no traceback of headfit's (torchrun's own report follows)
    assert seconds < 120


# -- launches refused before (or at) the rendezvous ------------------------------------------------------


def _as_rank(monkeypatch, rank: int = 0, world_size: int = 2) -> None:
    for name, value in {"RANK": rank, "WORLD_SIZE": world_size, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": 2}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))


def test_a_rendezvous_that_never_completes_stops_within_the_timeout(shapes, tmp_path, monkeypatch):
    _as_rank(monkeypatch)  # rank 0 of 2, and rank 1 never starts
    started = time.perf_counter()
    result = CliRunner().invoke(
        cli, ["train", TINY, "--data", str(shapes), "--dist-timeout", "2", "--project", str(tmp_path), *SMALL]
    )
    assert result.exit_code == 2, result.output
    assert "rank 0 of 2 could not join the others at 127.0.0.1:" in result.output
    assert "within 2 s" in result.output and "--dist-timeout" in result.output
    assert time.perf_counter() - started < 30
    assert not list(tmp_path.iterdir())  # no run directory for a run that never started


def test_a_batch_the_processes_cannot_split(shapes, tmp_path, monkeypatch):
    _as_rank(monkeypatch)
    result = CliRunner().invoke(cli, ["train", TINY, "--data", str(shapes), "--batch", "5", *SMALL])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--batch 5 is the total batch of one step over all 2 processes" in text
    assert "(2.5 images each)" in text and "`--batch 4` or `--batch 6` (2 or 3 per process)" in text


def test_a_resume_on_a_world_size_that_cannot_split_its_batch():
    with pytest.raises(UsageError, match=r"runs/exp trains with a total batch of 4, .* divides 4 \(1, 2, 4\)$"):
        distributed.check_world(World(rank=0, world_size=3), "cpu", batch=4, resuming="runs/exp")


def test_more_processes_on_a_node_than_gpus(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UsageError, match=r"started 4 processes on this node .*, but this machine has 2 CUDA GPUs") as found:
        distributed.check_world(World(rank=0, world_size=4), "cuda", batch=8)
    assert "`--nproc_per_node 2`" in str(found.value)
    distributed.check_world(World(rank=0, world_size=4), "cpu", batch=8)  # CPU processes: any number


def test_sync_bn_is_refused_where_it_cannot_run():
    with pytest.raises(UsageError, match="--sync-bn needs CUDA"):
        distributed.sync_batchnorm(torch.nn.BatchNorm2d(3), "cpu")


class Gathered(World):
    """A rank that sees ``values`` as what every rank sent (no process group)."""

    def __init__(self, values: list) -> None:
        super().__init__(rank=0, world_size=len(values))
        object.__setattr__(self, "values", values)

    def all_gather(self, value):
        return [value, *self.values[1:]]


def test_ranks_reading_different_data_are_named():
    ours = ({"train": "sha256:aa", "val": "sha256:vv"}, {"train": "/data/train.json", "val": "/data/val.json"})
    theirs = ({"train": "sha256:bb", "val": "sha256:vv"}, {"train": "/mnt/train.json", "val": "/data/val.json"})
    with pytest.raises(UsageError) as found:
        distributed.same_fingerprints(Gathered([ours, ours, theirs]), *ours)
    assert "read different train data: rank 0: /data/train.json (sha256:aa); rank 2: /mnt/train.json" in str(
        found.value
    )
    distributed.same_fingerprints(Gathered([ours, ours]), *ours)


def test_a_failure_on_one_rank_is_raised_on_every_rank():
    note = StopNote.of(1, UsageError("image 7 does not decode"))
    world = Gathered([None, (None, note)])
    with pytest.raises(RankFailed, match="rank 1 stopped, so every rank stopped: image 7 does not decode"):
        world.everywhere(lambda: [])
    assert World().everywhere(lambda: 5) == [5]
    with pytest.raises(ZeroDivisionError):
        World().everywhere(lambda: 1 / 0)


# -- --devices N: torchrun started by headfit -------------------------------------------------------------


def test_devices_runs_the_same_command_under_torchrun():
    argv = [TINY, "--devices", "2", "--data", "d", "--devices=3", "--batch", "4"]
    command = distributed.torchrun_command(2, argv)
    assert command[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    assert command[7:] == ["headfit", "train", TINY, "--data", "d", "--batch", "4"]


def test_devices_under_torchrun_is_refused(shapes, monkeypatch):
    _as_rank(monkeypatch)
    result = CliRunner().invoke(cli, ["train", TINY, "--data", str(shapes), "--devices", "2"])
    assert result.exit_code == 2 and "--devices starts torchrun itself" in result.output


@pytest.mark.slow
def test_devices_2_trains_on_two_processes(shapes, tmp_path):
    command = [
        sys.executable, "-m", "headfit", "train", TINY, "--devices", "2", "--data", str(shapes),
        "--batch", "4", "--epochs", "1", "--project", str(tmp_path), *SMALL,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "exp" / "args.json").read_text())["world_size"] == 2
    assert done.stdout.count("done: 1 epoch(s)") == 1


def test_a_step_stopped_on_another_rank_stops_this_one_with_that_ranks_diagnosis():
    import pickle

    from headfit.live import diagnose_exception
    from headfit.train.loop import Trainer, TrainingStopped

    diagnosis = diagnose_exception(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))
    note = StopNote(1, "training stopped at epoch 1, batch 3 on RuntimeError", 1, diagnosis)
    trainer = Trainer.__new__(Trainer)  # _agree needs only the world and the Ctrl-C flag
    trainer.world, trainer.interrupted = Gathered([None, (pickle.loads(pickle.dumps(note)), {}, False)]), False
    with pytest.raises(TrainingStopped, match="^rank 1: training stopped at epoch 1, batch 3") as found:
        trainer._agree(None, {"loss": 1.0})
    assert found.value.diagnosis.to_dict() == diagnosis.to_dict() and found.value.exit_code == 1

    trainer.world = Gathered([None, (None, {"loss": 3.0}, True)])  # fine, but Ctrl-C reached rank 1
    assert trainer._agree(None, {"loss": 1.0}) == {"loss": 2.0} and trainer.interrupted


def test_validation_is_sharded_and_gathered_once_per_image(shapes, monkeypatch):
    from types import SimpleNamespace

    import headfit.evaluation
    from headfit.evaluation.coco import Detections
    from headfit.train.detection import DetectionTask

    val = read(shapes, split="val")
    assert len(val.images) >= 3
    seen = []

    def detect(model, shard, **options):
        seen.append([r.image_id for r in shard.images])
        return [Detections(r.image_id, [[0, 0, 4, 4]], [0.9], [1]) for r in shard.images]

    monkeypatch.setattr(headfit.evaluation, "detect", detect)
    ids = [r.image_id for r in val.images]
    theirs = [Detections(i, [], [], []) for i in [*ids[1::2], ids[1]]]  # rank 1's, one image twice
    task = SimpleNamespace(
        setup=SimpleNamespace(val=val, batch_size=4, device="cpu", workers=0),
        world=Gathered([None, (theirs, None)]),
    )
    found = DetectionTask._detect_sharded(task, model=None)
    assert seen == [ids[0::2]]  # rank 0 detected every other image, from the first
    assert [d.image_id for d in found] == ids  # each image once, in the data's order
    assert [len(d.boxes) for d in found] == [1 - k % 2 for k in range(len(ids))]


def test_devices_beyond_the_gpus_is_refused_before_any_process_starts(monkeypatch):
    import subprocess as sp

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(sp, "Popen", lambda *a, **k: pytest.fail("torchrun was started"))
    with pytest.raises(UsageError, match=r"^--devices 4 asks for 4 training processes, but this machine has 2 CUDA GPUs"):
        distributed.launch(4, [TINY], "auto")
