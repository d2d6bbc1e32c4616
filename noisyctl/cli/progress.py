"""The progress bar of a training (``train``, ``prune --retrain``): a ``TrainingProgress`` drawn by rich."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from noisyctl.cli.common import stderr


class RichTrainingProgress:
    """One bar over all epochs, with the last epoch's loss, accuracy and throughput beside it."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None
        self.epochs = 0

    def start(self, epochs: int, samples: int, epochs_done: int) -> None:
        self.epochs = epochs
        if self.task is None:  # drawn from the first training on
            self.progress.start()
        self.task = self.progress.add_task("train", total=epochs * samples, completed=epochs_done * samples,
                                           epoch=epochs_done + 1, epochs=epochs, status="")

    def batch(self, samples: int) -> None:
        self.progress.advance(self.task, samples)

    def epoch_done(self, epoch: int, figures: dict[str, float], samples_per_second: float) -> None:
        status = f"loss {figures['train_loss']:.3f}  acc {figures['train_accuracy']:.1%}"
        if "test_accuracy" in figures:
            status += f"  test {figures['test_accuracy']:.1%}"
        status += f"  {samples_per_second:,.0f} samples/s"
        self.progress.update(self.task, epoch=min(epoch + 2, self.epochs), status=status)

    def note(self, text: str) -> None:
        self.progress.console.print(text)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


@contextmanager
def training_progress(show: bool) -> Iterator[RichTrainingProgress | None]:
    """A progress bar on stderr while training, or None (quiet, --json)."""
    if not show:
        yield None
        return
    columns = [TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn()]
    # Drawn from the first epoch on: an error in the options before it is one line, not a blank
    # line (an empty bar) and then the error.
    progress = RichTrainingProgress(Progress(*columns, console=stderr(), transient=False))
    try:
        yield progress
    finally:
        progress.close()


def _reports_result(text: str, done: int, total: int) -> bool:
    """A finished step whose text reports a result (it holds a ':'), kept as a line."""
    return ":" in text and done >= total


@contextmanager
def step_progress(show: bool) -> Iterator:
    """A ``progress(text, done, total)`` callable drawing one bar on stderr when it is a terminal
    (no-op when quiet or --json); a text that reports a result (it holds a ':') is also kept as a
    line, and in a log is all that is written."""
    if not show:
        yield lambda text, done, total: None
        return
    console = stderr()
    if not console.is_terminal:
        # A log, not a screen: a transient bar cannot be taken back there and leaves a blank line
        # (before an error, too), so only the lines that report a result are written.
        def report(text: str, done: int, total: int) -> None:
            if _reports_result(text, done, total):
                console.print(text)

        yield report
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=1)

        def update(text: str, done: int, total: int) -> None:
            progress.update(task, description=text, completed=done, total=max(total, 1))
            if _reports_result(text, done, total):
                progress.console.print(text)

        yield update
