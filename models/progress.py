"""Training progress: what the loop reports (`TrainProgress`) and the reporters that show it.

`models.train.train` calls a reporter at the end of every epoch and, within an epoch, whenever
`reporter.every_s` seconds have passed since the last report, so a long epoch still reports. The
reporters here know nothing of Dagster: `LineReporter` hands one line of text to any function
(`print`, a logger, Dagster's `context.log.info`); `RichReporter` draws a progress bar with an ETA.
`default_reporter()` picks the bar on a terminal and plain lines otherwise (piped, CI, log files).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

# At least once a minute, as promised to anyone watching a long fit; twice is cheap.
DEFAULT_EVERY_S = 30.0


@dataclass(frozen=True)
class TrainProgress:
    epoch: int  # 1-based epoch in progress (or just finished, when epoch_done)
    max_epochs: int
    step: int  # steps done in this epoch
    steps_per_epoch: int
    train_loss: float  # mean squared error over the triples seen so far in this epoch
    valid_loss: float | None  # at epoch end, when there is a validation set
    triples_per_s: float  # this epoch so far
    elapsed_s: float  # since training (or resuming) began
    eta_s: float  # to max_epochs at the pace so far (early stopping may end sooner)
    epoch_done: bool

    @property
    def epochs_done(self) -> float:
        """Fractional epochs completed."""
        return self.epoch - 1 + (1.0 if self.epoch_done else self.step / max(self.steps_per_epoch, 1))

    def line(self) -> str:
        where = (f"epoch {self.epoch}/{self.max_epochs} done" if self.epoch_done else
                 f"epoch {self.epoch}/{self.max_epochs} step {self.step}/{self.steps_per_epoch}")
        valid = f" valid {self.valid_loss:.4f}" if self.valid_loss is not None else ""
        return (f"LPM {where}: loss {self.train_loss:.4f}{valid}, {self.triples_per_s:,.0f} triples/s, "
                f"elapsed {fmt_duration(self.elapsed_s)}, ETA ≤ {fmt_duration(self.eta_s)}")


class Reporter(Protocol):
    every_s: float

    def __call__(self, p: TrainProgress) -> None: ...


def fmt_duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class LineReporter:
    """One line per report to `emit` (default: stderr)."""

    def __init__(self, emit: Callable[[str], None] | None = None, every_s: float = DEFAULT_EVERY_S):
        self.emit = emit or (lambda line: print(line, file=sys.stderr, flush=True))
        self.every_s = every_s

    def __call__(self, p: TrainProgress) -> None:
        self.emit(p.line())


class RichReporter:
    """A rich progress bar (epochs, with the loop's own ETA); one printed line per finished epoch."""

    def __init__(self, every_s: float = 1.0, console=None):
        self.every_s = every_s
        self.console = console
        self._bar = self._task = None

    def __call__(self, p: TrainProgress) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("LPM"), BarColumn(), TextColumn("{task.completed:.1f}/{task.total} epochs"),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                                 transient=True)
            self._bar.start()
            self._task = self._bar.add_task("LPM", total=p.max_epochs, info="")
        valid = f" valid {p.valid_loss:.4f}" if p.valid_loss is not None else ""
        self._bar.update(self._task, completed=p.epochs_done,
                         info=f"loss {p.train_loss:.4f}{valid} {p.triples_per_s:,.0f} triples/s "
                              f"ETA ≤ {fmt_duration(p.eta_s)}")
        if p.epoch_done:
            self._bar.console.print(p.line(), markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def configured_every_s() -> float:
    """PERTURBGRAPH_PROGRESS_EVERY_S (graph.settings), DEFAULT_EVERY_S when unset."""
    from graph.settings import get_settings

    return get_settings().progress_every_s


def default_reporter() -> LineReporter | RichReporter:
    """A bar on an interactive terminal (stderr), plain lines every configured_every_s() otherwise."""
    return RichReporter() if sys.stderr.isatty() else LineReporter(every_s=configured_every_s())


_ambient: ContextVar[Reporter | None] = ContextVar("perturbgraph_training_progress", default=None)


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[Reporter]:
    """Every fit inside the block reports to `reporter`, whatever its own `progress` argument says:
    an orchestrator (a Dagster asset) sees the fits that library code (the evaluation harness)
    starts silently."""
    token = _ambient.set(reporter)
    try:
        yield reporter
    finally:
        _ambient.reset(token)


def resolve(progress) -> Reporter | None:
    """train()'s `progress` argument: True (default reporter), False/None (silent) or a reporter;
    inside `reporting_to(r)`, always r."""
    if (ambient := _ambient.get()) is not None:
        return ambient
    if progress is True:
        return default_reporter()
    if not progress:
        return None
    if not callable(progress):
        raise TypeError(f"progress must be a bool or a callable taking TrainProgress, not {type(progress).__name__}")
    return progress
