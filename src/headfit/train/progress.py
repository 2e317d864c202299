"""What a person watches during training: a rich progress bar on a terminal, plain lines otherwise.

Both show the epoch, the batch, it/s, the ETA of the epoch and each loss term (the epoch's running
mean). Plain lines come every ``interval`` seconds and at the end of each epoch, so a log file or a
CI job gets a readable record without carriage returns. Ranks other than 0 show nothing.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from rich.console import Console


class Display(Protocol):
    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None: ...
    def step(self, done: int, losses: dict[str, float], lr: float) -> None: ...
    def end_epoch(self, line: str) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


def losses_text(losses: dict[str, float]) -> str:
    if not losses:
        return ""
    total = losses.get("loss")
    terms = " ".join(f"{k} {v:.3f}" for k, v in losses.items() if k != "loss")
    return f"loss {total:.3f} ({terms})" if total is not None else terms


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainDisplay:
    """A line every ``interval`` seconds: ``epoch 2/10  batch 40/120  3.1 it/s  eta 0:26  loss ...``."""

    def __init__(self, console: Console, interval: float = 10.0) -> None:
        self.console, self.interval = console, interval
        self.epoch = self.epochs = self.total = self.first = 0
        self.started = self.last = 0.0

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        self.epoch, self.epochs, self.total, self.first = epoch, epochs, total, done
        self.started = self.last = time.perf_counter()

    def step(self, done: int, losses: dict[str, float], lr: float) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval and done < self.total:
            return
        self.last = now
        rate = (done - self.first) / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        self.console.print(
            f"epoch {self.epoch}/{self.epochs}  batch {done}/{self.total}  {rate:.2f} it/s  "
            f"eta {_clock(eta)}  lr {lr:.3g}  {losses_text(losses)}",
            highlight=False,
            soft_wrap=True,
        )

    def end_epoch(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


class RichDisplay:
    """A live bar per epoch; the epoch's summary line stays printed above the next bar."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
            transient=True,
        )
        self.task: Any = None
        self.first = 0
        self.started = 0.0

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if self.task is None:
            self.progress.start()
        else:
            self.progress.remove_task(self.task)
        self.first, self.started = done, time.perf_counter()
        self.task = self.progress.add_task(
            f"epoch {epoch}/{epochs}", total=total, completed=done, rate="", losses=""
        )

    def step(self, done: int, losses: dict[str, float], lr: float) -> None:
        rate = (done - self.first) / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, completed=done, rate=f"{rate:.2f} it/s", losses=losses_text(losses))

    def end_epoch(self, line: str) -> None:
        self.progress.console.print(line, highlight=False)

    def note(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


class NullDisplay:
    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        pass

    def step(self, done: int, losses: dict[str, float], lr: float) -> None:
        pass

    def end_epoch(self, line: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def make_display(console: Console | None = None, *, is_main: bool = True, interval: float = 10.0) -> Display:
    if not is_main:
        return NullDisplay()
    console = console or Console(highlight=False)
    return RichDisplay(console) if console.is_terminal else PlainDisplay(console, interval)
