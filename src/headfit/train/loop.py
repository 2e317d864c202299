"""The training loop, for any ``Task``: optimizer, schedule, AMP, clipping, EMA, state, metrics, display.

One step is torchvision's ``train_one_epoch`` step (``references/detection/engine.py``): forward under
autocast, the sum of the loss terms, a finiteness check, backward through the GradScaler, clipping,
the optimizer and the per-iteration lr schedule. Around it: the resume state is written atomically
every ``save_every_s`` seconds and at each epoch end; each epoch ends with validation, a row in
``metrics.csv``, ``last``/``best`` checkpoints and plots; ``patience`` stops a run whose primary
metric stopped improving. A non-finite loss stops with HF401; any other exception in the loop with
headfit's live diagnosis of it (``TrainingStopped``, exit 1). Ctrl-C finishes the step and saves.

Under ``torchrun`` the model's forward runs through ``DistributedDataParallel`` (``parallel``) while
the state, validation, EMA and checkpoints use the module itself (no ``module.`` prefix). Each step
gathers from every rank its loss terms, whether it stopped (a non-finite loss, an exception) and
whether Ctrl-C was pressed: the logged losses are the means over the ranks, and a stop on one rank
stops every rank at the same step, rank 0 printing the failing rank's diagnosis.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from headfit.diagnosis import Diagnosis
from headfit.errors import HeadfitError
from headfit.train.ema import make_ema
from headfit.train.metrics import METRICS_FILE, MetricsLog
from headfit.train.nonfinite import StepFacts, nonfinite_diagnosis
from headfit.train.progress import Display, NullDisplay, losses_text
from headfit.train.schedule import WarmupCosine, warmup_iterations
from headfit.train.state import STATE_FILE, capture_rng, restore_rng, save_state
from headfit.train.task import Batch, Task
from headfit.train.world import RankFailed, StopNote, World

HISTORY = 8  # total losses kept for the non-finite diagnosis


class TrainingStopped(HeadfitError):
    """The loop stopped on a problem it found; ``diagnosis`` says what and how to fix it (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, diagnosis: Diagnosis) -> None:
        super().__init__(message)
        self.diagnosis = diagnosis


class Terminated(HeadfitError):
    """SIGTERM under torchrun: the launcher ends every rank when one fails (or the job was cancelled)."""

    exit_code = 143  # 128 + SIGTERM, what the shell reports for a process it ended

    def __init__(self, world: World, hint: str) -> None:
        super().__init__(
            f"rank {world.rank} of {world.world_size} was ended by SIGTERM: torchrun stops every process "
            "of a run when one of them fails (its report below names that rank and how it ended), and a "
            f"scheduler does the same when the job is cancelled; {hint}"
        )


@dataclass
class LoopConfig:
    epochs: int
    lr: float
    optimizer: str = "sgd"  # or "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_norm: float | None = 10.0
    amp: str | None = None  # "bf16" | "fp16" | None (CUDA only)
    ema: bool = False
    save_every_s: float = 600.0  # seconds between mid-epoch state writes; 0 writes after every step
    patience: int | None = None  # epochs without a better primary metric before stopping
    device: str = "cpu"
    total_batch: int = 1  # images per optimizer step over all ranks


@dataclass
class Position:
    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch finished
    step: int = 0  # optimizer steps finished in all


@dataclass
class FitResult:
    run: Path
    epochs_done: int
    best_epoch: int | None
    best: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    stopped_early: str | None = None
    seconds: float = 0.0
    train_images_per_second: float = 0.0


def make_optimizer(params: list[nn.Parameter], config: LoopConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


class Trainer:
    def __init__(
        self,
        task: Task,
        model: nn.Module,
        config: LoopConfig,
        run: Path,
        *,
        world: World | None = None,
        display: Display | None = None,
        parallel: nn.Module | None = None,
    ) -> None:
        self.task, self.model, self.config, self.run = task, model, config, run
        self.forward = parallel if parallel is not None else model  # DDP's wrapper of ``model``
        self.world = world or World()
        self.display = display or NullDisplay()
        self.device = torch.device(config.device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, config)
        self.steps_per_epoch = task.batches_per_epoch()
        self.warmup = warmup_iterations(self.steps_per_epoch)
        self.scheduler = WarmupCosine(self.optimizer, self.warmup, self.steps_per_epoch * config.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.ema = make_ema(model) if config.ema else None
        self.position = Position()
        self.best_score, self.best_epoch, self.stale = -math.inf, None, 0
        self.log = MetricsLog(run / METRICS_FILE)
        self.history: deque[float] = deque(maxlen=HISTORY)
        self.sums: dict[str, float] = {}  # loss terms summed over this epoch's steps so far
        self.count = 0
        self.train_seconds = 0.0
        self.train_images = 0
        self.interrupted = False

    # -- state --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "position": [self.position.epoch, self.position.batch, self.position.step],
            "best": [self.best_score, self.best_epoch if self.best_epoch is not None else -1, self.stale],
            "epoch_sums": [dict(self.sums), self.count],  # the running loss means of the current epoch
            "rng": capture_rng(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where ``state`` was written (``lr`` and ``epochs`` may differ: see below)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._set_peak_lr(self.config.lr)
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.position = Position(*state["position"])
        self.sums, self.count = dict(state["epoch_sums"][0]), int(state["epoch_sums"][1])
        score, epoch, self.stale = state["best"]
        self.best_score, self.best_epoch = score, (epoch if epoch >= 0 else None)
        self.log = MetricsLog.read(self.run / METRICS_FILE, up_to_epoch=self.position.epoch)
        restore_rng(state["rng"])

    def _set_peak_lr(self, lr: float) -> None:
        """A resumed run may be given another ``--lr``: it becomes the peak the schedule scales."""
        for group in self.optimizer.param_groups:
            group["initial_lr"] = lr
        self.scheduler.base_lrs = [lr] * len(self.optimizer.param_groups)

    def save(self) -> None:
        if self.world.is_main:
            save_state(self.run / STATE_FILE, self.state_dict())

    # -- the loop -----------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        started = time.perf_counter()
        stopped = None
        try:
            with self._ctrl_c_at_step_end():
                while self.position.epoch < self.config.epochs and stopped is None:
                    self._guarded(self._train_epoch)
                    stopped = self._guarded(self._end_epoch)
        finally:
            self.display.close()
        return self._result(stopped, time.perf_counter() - started)

    @contextlib.contextmanager
    def _ctrl_c_at_step_end(self) -> Iterator[None]:
        """The first Ctrl-C lets the current step finish, saves the state and stops; a second one
        stops at once (the state saved last stays the one to resume from)."""
        self.interrupted = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum: int, frame: Any) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            self.display.note("Ctrl-C: saving the state after this step (press again to stop at once)")

        def on_sigterm(signum: int, frame: Any) -> None:
            raise Terminated(self.world, self._resume_hint())

        previous = signal.signal(signal.SIGINT, on_sigint)
        before = signal.signal(signal.SIGTERM, on_sigterm) if self.world.distributed else None
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            if before is not None:
                signal.signal(signal.SIGTERM, before)

    def _train_epoch(self) -> None:
        epoch, start = self.position.epoch, self.position.batch
        self.forward.train()
        self.display.start_epoch(epoch + 1, self.config.epochs, self.steps_per_epoch, start)
        if start == 0:
            self.sums, self.count = {}, 0
        self.epoch_started = last_save = began = time.perf_counter()
        batches = iter(self.task.batches(epoch, start))
        while True:
            batch, failure = _next_batch(batches)
            if failure is not None:
                self._agree(failure, {})  # raises on every rank
            if batch is None:
                break
            terms = self._step(batch)
            for name, value in terms.items():
                self.sums[name] = self.sums.get(name, 0.0) + value
            self.count += 1
            self.train_images += batch.size
            self.position.batch += 1
            self.position.step += 1
            means = {k: v / self.count for k, v in self.sums.items()}
            self.display.step(self.position.batch, means, self._lr())
            if self.interrupted:
                self.save()
                raise KeyboardInterrupt
            if time.perf_counter() - last_save >= self.config.save_every_s:
                self.save()
                last_save = time.perf_counter()
        self.train_seconds += time.perf_counter() - began
        self.epoch_losses = {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def _step(self, batch: Batch) -> dict[str, float]:
        """One optimizer step; the loss terms as floats (``loss`` is their sum), averaged over the ranks."""
        loss, values, failure = None, {}, None
        try:
            loss, values = self._forward(batch)
        except Exception as exc:  # agreed with the other ranks first, then raised
            failure = exc
        if failure is None and not math.isfinite(values["loss"]):
            failure = self._nonfinite_stop(batch, values)
        values = self._agree(failure, values)
        self.scaler.scale(loss).backward()
        norm = self._clip()
        if norm is not None and not math.isfinite(norm) and not self.scaler.is_enabled():
            self._stop_nonfinite(batch, {**values, "gradient norm": norm})
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.history.append(values["loss"])
        return {"loss": values.pop("loss"), **values}

    def _forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        amp = _amp_dtype(self.config.amp)
        with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            terms = self.task.loss_terms(self.forward, batch)
            loss = sum(terms.values())
        floats = torch.stack([t.detach().float().reshape(()) for t in terms.values()]).tolist()
        values = dict(zip(terms, floats, strict=True))
        values["loss"] = sum(floats)
        return loss, values

    def _agree(self, failure: BaseException | None, values: dict[str, float]) -> dict[str, float]:
        """Every rank's outcome of this step: raise on every rank when one stopped; else this step's
        loss terms averaged over the ranks (Ctrl-C on any rank is Ctrl-C on all)."""
        if failure is not None and not isinstance(failure, HeadfitError):
            failure = self._exception_stop(failure)
        if not self.world.distributed:
            if failure is not None:
                raise failure
            return values
        note = None if failure is None else StopNote.of(self.world.rank, failure)
        gathered = self.world.all_gather((note, values, self.interrupted))
        if failure is not None:
            raise failure
        notes = [n for n, _, _ in gathered if n is not None]
        if notes:
            raise _stopped_by(notes[0])
        self.interrupted = any(flag for _, _, flag in gathered)
        return {k: sum(v[k] for _, v, _ in gathered) / len(gathered) for k in values}

    def _clip(self) -> float | None:
        if not self.config.clip_norm:
            return None
        self.scaler.unscale_(self.optimizer)
        return float(torch.nn.utils.clip_grad_norm_(self.params, self.config.clip_norm))

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _end_epoch(self) -> str | None:
        """Validate, log, save; the reason to stop early, if any."""
        self.world.share_buffers(self.model)
        if self.ema is not None:
            self.world.share_buffers(self.ema)
        evaluated = self.ema.module if self.ema is not None else self.model
        evaluated.eval()
        metrics = self.task.validate(evaluated)
        self.position.epoch += 1
        self.position.batch = 0
        epoch = self.position.epoch
        score = metrics.get(self.task.primary_metric, -math.inf)
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
        else:
            self.stale += 1
        row = {
            "epoch": epoch,
            "lr": self._lr(),
            **self.epoch_losses,
            **metrics,
            "seconds": round(time.perf_counter() - self.epoch_started, 2),
        }
        row["train_loss"] = row.pop("loss", math.nan)
        row = {k: row[k] for k in ["epoch", "lr", *self._term_names(), "train_loss", *metrics, "seconds"]}
        if self.world.is_main:
            self.log.append(row)
            extra = {"epoch": epoch, "metrics": row}
            self.task.save_model(evaluated, self.run / "last.safetensors", extra)
            if improved:
                self.task.save_model(evaluated, self.run / "best.safetensors", extra)
            self.task.after_epoch(evaluated, self.run, self.log, improved)
        self.save()
        self.display.end_epoch(self._epoch_line(row, improved))
        patience = self.config.patience
        if self.world.any(bool(patience) and self.stale >= patience and epoch < self.config.epochs):
            return (
                f"{self.task.primary_metric} has not improved for {self.stale} epochs (best "
                f"{self.best_score:.4f} at epoch {self.best_epoch}); stopped early by --patience {patience}"
            )
        return None

    def _term_names(self) -> list[str]:
        return [k for k in self.epoch_losses if k != "loss"]

    def _epoch_line(self, row: dict[str, float], improved: bool) -> str:
        metrics = "  ".join(f"{k} {row[k]:.4f}" for k in self.task.metric_columns if k in row)
        losses = losses_text({"loss": row["train_loss"], **{k: row[k] for k in self._term_names()}})
        mark = "  (best)" if improved else ""
        return f"epoch {int(row['epoch'])}/{self.config.epochs}  {losses}  {metrics}{mark}"

    def _guarded(self, work: Any) -> Any:
        """Run ``work``; an unexpected exception becomes ``TrainingStopped`` with its live diagnosis."""
        try:
            return work()
        except (HeadfitError, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._stop_on_exception(exc)

    # -- stopping -----------------------------------------------------------------------------------

    def _nonfinite_stop(self, batch: Batch, values: dict[str, float]) -> TrainingStopped:
        facts = StepFacts(
            epoch=self.position.epoch + 1,
            epochs=self.config.epochs,
            batch=self.position.batch + 1,
            batches=self.steps_per_epoch,
            step=self.position.step,
            terms={k: v for k, v in values.items() if k != "loss"},
            lr=self._lr(),
            peak_lr=self.config.lr,
            total_batch=self.config.total_batch,
            amp=self.config.amp,
            history=list(self.history),
            warmup=self.warmup,
            resumable=(self.run / STATE_FILE).is_file(),
        )
        diagnosis = nonfinite_diagnosis(facts, self.task.batch_evidence(batch))
        return TrainingStopped(f"{diagnosis.summary}; {self._resume_hint()}", diagnosis)

    def _stop_nonfinite(self, batch: Batch, values: dict[str, float]) -> None:
        raise self._nonfinite_stop(batch, values)

    def _exception_stop(self, exc: BaseException) -> TrainingStopped:
        from headfit.live import diagnose_exception

        diagnosis = diagnose_exception(exc)
        where = f"epoch {self.position.epoch + 1}, batch {self.position.batch + 1}"
        first = (str(exc).strip().splitlines() or [""])[0]
        stopped = TrainingStopped(
            f"training stopped at {where} on {type(exc).__name__}: {first}; {self._resume_hint()}", diagnosis
        )
        stopped.__cause__ = exc
        return stopped

    def _stop_on_exception(self, exc: Exception) -> None:
        raise self._exception_stop(exc)

    def _resume_hint(self) -> str:
        if (self.run / STATE_FILE).is_file():
            return f"the last saved state is in {self.run / STATE_FILE} (`headfit train --resume {self.run}`)"
        return "no state was saved yet"

    def _result(self, stopped: str | None, seconds: float) -> FitResult:
        rows = self.log.rows
        best = next((r for r in rows if r.get("epoch") == self.best_epoch), {})
        return FitResult(
            run=self.run,
            epochs_done=self.position.epoch,
            best_epoch=self.best_epoch,
            best=dict(best),
            last=dict(rows[-1]) if rows else {},
            stopped_early=stopped,
            seconds=seconds,
            train_images_per_second=self.train_images / self.train_seconds if self.train_seconds else 0.0,
        )


def _next_batch(batches: Iterator[Batch]) -> tuple[Batch | None, BaseException | None]:
    """The next batch, ``(None, None)`` at the end, or ``(None, exc)`` when fetching it raised."""
    try:
        return next(batches), None
    except StopIteration:
        return None, None
    except Exception as exc:
        return None, exc


def _stopped_by(note: StopNote) -> HeadfitError:
    """This rank's stop because rank ``note.rank`` stopped: its diagnosis when it has one."""
    if note.diagnosis is None:
        return RankFailed(note)
    return TrainingStopped(f"rank {note.rank}: {note.message}", note.diagnosis)


def _amp_dtype(amp: str | None) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "", None)
