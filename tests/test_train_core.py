"""The task-agnostic training core on a task that is not detection (a tiny classifier): the loop,
the resumable grouped sampler, the schedule, the state file, the metrics log, HF401 and stops."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from headfit import files
from headfit.errors import UsageError
from headfit.train.loop import LoopConfig, Trainer, TrainingStopped
from headfit.train.metrics import MetricsLog
from headfit.train.sampler import GroupedBatchSampler, aspect_ratio_groups
from headfit.train.schedule import WarmupCosine, lr_factor, scaled_lr
from headfit.train.state import STATE_FILE, load_state, save_state
from headfit.train.task import Batch, BatchEvidence


class Blobs:
    """Two Gaussian blobs in 8-d; a classifier task through the same Task protocol as detection."""

    name = "classification"
    primary_metric = "val_acc"
    metric_columns = ("val_acc",)

    def __init__(
        self, n: int = 48, batch: int = 8, seed: int = 0, poison: int | None = None, crash: int | None = None
    ):
        g = torch.Generator().manual_seed(1)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, 8, generator=g) + 2.0 * self.y[:, None]
        self.sampler = GroupedBatchSampler([0] * n, batch, seed=seed)
        self.poison, self.crash, self.seen = poison, crash, 0
        self.saved: list[Path] = []

    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch()

    def batches(self, epoch: int, start: int):
        self.sampler.set_epoch(epoch, start)
        for batch in self.sampler:
            index = torch.tensor([i for i, _ in batch])
            noise = torch.stack(
                [torch.randn(8, generator=torch.Generator().manual_seed(s)) for _, s in batch]
            )
            yield Batch(
                inputs=self.x[index] + 0.1 * noise,
                targets=self.y[index],
                size=len(batch),
                meta=index.tolist(),
            )

    def loss_terms(self, model, batch):
        self.seen += 1
        if self.crash is not None and self.seen == self.crash:
            torch.zeros(2, 3) @ torch.zeros(4, 5)  # a real shape error inside the loop
        x = batch.inputs
        if self.poison is not None and self.seen == self.poison:
            x = x * float("nan")
        return {"cross_entropy": nn.functional.cross_entropy(model(x), batch.targets)}

    def validate(self, model):
        with torch.no_grad():
            return {"val_acc": float((model(self.x).argmax(1) == self.y).float().mean())}

    def save_model(self, model, path, extra):
        self.saved.append(path)

    def after_epoch(self, model, run, log, improved):
        pass

    def batch_evidence(self, batch):
        return BatchEvidence(facts=[f"samples {batch.meta}"])


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def trainer(run: Path, task=None, epochs=3, **config) -> Trainer:
    options = {"epochs": epochs, "lr": 0.05, "save_every_s": math.inf, **config}
    return Trainer(task or Blobs(), mlp(), LoopConfig(**options), run)


def test_the_loop_learns_and_logs_every_epoch(tmp_path):
    result = trainer(tmp_path, epochs=4).fit()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == ["epoch", "lr", "cross_entropy", "train_loss", "val_acc", "seconds"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert result.best["val_acc"] > 0.9 and result.epochs_done == 4
    assert load_state(tmp_path / STATE_FILE)["position"] == [4, 0, 24]


def test_resume_mid_epoch_continues_exactly(tmp_path):
    whole = trainer(tmp_path / "a")
    whole.fit()

    first = trainer(tmp_path / "b", task=Blobs(), save_every_s=0)
    stop_at = 9  # the 4th batch of epoch 2 (6 batches per epoch)
    original = first._step

    def stopping(batch):
        if first.position.step == stop_at:
            raise KeyboardInterrupt
        return original(batch)

    first._step = stopping
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    state = load_state(tmp_path / "b" / STATE_FILE)
    assert state["position"] == [1, 3, 9]

    again = trainer(tmp_path / "b")
    again.load_state_dict(state)
    again.fit()
    for (name, a), b in zip(whole.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    log = MetricsLog.read(tmp_path / "b" / "metrics.csv", 99)
    for column in ("val_acc", "train_loss", "lr"):  # the epoch cut by the stop has its full means too
        resumed, uncut = log.series(column), whole.log.series(column)
        assert resumed[0] == uncut[0] and resumed[1] == pytest.approx(uncut[1], rel=1e-5), column


def test_more_epochs_extend_a_finished_run(tmp_path):
    done = trainer(tmp_path, epochs=2)
    done.fit()
    assert done._lr() == pytest.approx(0.05 * 0.01, rel=1e-6)  # the cosine ended at its floor
    longer = trainer(tmp_path, epochs=4)
    longer.load_state_dict(load_state(tmp_path / STATE_FILE))
    assert 0.05 * 0.01 < longer._lr() < 0.05  # the rest of a longer cosine
    result = longer.fit()
    assert result.epochs_done == 4 and len(result.last) and longer.log.rows[-1]["epoch"] == 4


def test_a_nan_stops_with_hf401_naming_the_term_and_the_batch(tmp_path):
    with pytest.raises(TrainingStopped) as stopped:
        trainer(tmp_path, task=Blobs(poison=8)).fit()
    d = stopped.value.diagnosis
    assert (d.code, stopped.value.exit_code) == ("HF401", 1)
    assert "`cross_entropy` = nan" in d.summary and "epoch 2, batch 2" in d.summary
    assert any(f.startswith("samples [") for f in d.facts)
    assert any("--lr" in c.fix for c in d.causes)


def test_an_exception_in_the_loop_gets_the_live_diagnosis(tmp_path):
    with pytest.raises(TrainingStopped) as stopped:
        trainer(tmp_path, task=Blobs(crash=3)).fit()
    assert "epoch 1, batch 3" in str(stopped.value) and "RuntimeError" in str(stopped.value)
    assert stopped.value.diagnosis.code is not None  # a matmul shape error headfit explains


def test_patience_stops_a_run_that_stopped_improving(tmp_path):
    task = Blobs()
    task.validate = lambda model: {"val_acc": 0.5}
    result = trainer(tmp_path, task=task, epochs=6, patience=2).fit()
    assert result.epochs_done == 3 and "--patience 2" in result.stopped_early
    assert task.saved.count(tmp_path / "best.safetensors") == 1


def test_ema_state_round_trips(tmp_path):
    first = trainer(tmp_path, epochs=1, ema=True)
    first.fit()
    again = trainer(tmp_path, epochs=1, ema=True)
    again.load_state_dict(load_state(tmp_path / STATE_FILE))
    for a, b in zip(first.ema.state_dict().values(), again.ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert int(again.ema.n_averaged) == 6


def test_grouped_batches_are_one_group_each_and_cover_every_image():
    sizes = [(640, 480)] * 7 + [(480, 640)] * 5 + [(1000, 300)] * 2
    groups = aspect_ratio_groups(sizes)
    sampler = GroupedBatchSampler(groups, 4, seed=3)
    batches = sampler.epoch_batches(0)
    assert len(batches) == math.ceil(14 / 4)
    assert all(len({groups[i] for i, _ in b}) == 1 and len(b) == 4 for b in batches)
    assert sampler.epoch_batches(0) == batches and sampler.epoch_batches(1) != batches
    sampler.set_epoch(0, start=2)
    assert list(sampler) == batches[2:] and len(sampler) == 2


def test_ranks_split_one_order_and_keep_their_groups():
    groups = aspect_ratio_groups([(640, 480)] * 10 + [(480, 640)] * 10)
    whole = GroupedBatchSampler(groups, 4, seed=5).epoch_batches(4)
    ranks = [GroupedBatchSampler(groups, 4, seed=5, rank=r, world_size=2).epoch_batches(4) for r in range(2)]
    # the global batch of 4 is cut in two: a step sees the same images on 1 process or on 2
    assert [a + b for a, b in zip(*ranks, strict=True)] == whole
    assert len(ranks[0]) == len(ranks[1]) == 5
    assert all(len({groups[i] for i, _ in b}) == 1 and len(b) == 2 for b in ranks[0] + ranks[1])
    with pytest.raises(ValueError, match="does not split over 3 ranks"):
        GroupedBatchSampler(groups, 4, world_size=3)


def test_lr_scales_with_the_batch_and_warms_up_then_anneals():
    assert scaled_lr(0.02, 16, 4, "sgd").lr == pytest.approx(0.005)
    assert scaled_lr(1e-4, 16, 64, "adamw").lr == pytest.approx(2e-4)
    assert lr_factor(0, 10, 100) == pytest.approx(1e-3)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.01)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = WarmupCosine(optimizer, 10, 100)
    for _ in range(55):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr_factor(55, 10, 100))


def test_state_holds_only_what_weights_only_loads(tmp_path):
    t = trainer(tmp_path, epochs=1)
    save_state(tmp_path / "s.pt", t.state_dict())
    assert torch.load(tmp_path / "s.pt", weights_only=True)["position"] == [0, 0, 0]


def test_a_full_disk_keeps_the_previous_state(tmp_path, monkeypatch):
    path = tmp_path / STATE_FILE
    save_state(path, {"position": [1, 0, 6]})
    before = path.read_bytes()

    def full(obj, file):
        file.write(b"half a state")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UsageError, match="no space left on the device.*previous state.pt is intact"):
        save_state(path, {"position": [2, 0, 12]})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary file left behind


def test_atomic_write_names_a_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write"):
        files.atomic_write_text(blocker / "metrics.csv", "a")


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(tmp_path):
    import io

    from rich.console import Console

    from headfit.train.progress import PlainDisplay, RichDisplay, make_display

    shown = {}
    for name, terminal in (("bar", True), ("lines", False)):
        out = io.StringIO()
        display = make_display(Console(file=out, force_terminal=terminal, width=160), interval=0)
        assert isinstance(display, RichDisplay if terminal else PlainDisplay)
        Trainer(
            Blobs(),
            mlp(),
            LoopConfig(epochs=2, lr=0.05, save_every_s=math.inf),
            tmp_path / name,
            display=display,
        ).fit()
        shown[name] = out.getvalue()
    assert "epoch 1/2  batch 1/6" in shown["lines"] and "it/s  eta" in shown["lines"]
    assert "\r" not in shown["lines"] and "\x1b[" not in shown["lines"]
    assert "epoch 2/2" in shown["bar"] and "it/s" in shown["bar"] and "cross_entropy" in shown["bar"]
    assert "val_acc" in shown["bar"]  # each epoch's summary line stays above the bar


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    import os
    import stat

    files.atomic_write_text(tmp_path / "metrics.csv", "epoch\n")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "metrics.csv").stat().st_mode) == 0o666 & ~mask
