"""Progress display of a training run, fed by plain event dicts.

The training loop emits events (``start``, ``step``, ``epoch``, ``line``); in process they
go straight to :class:`TrainProgress`, under Ray rank 0 sends them through a queue actor
and the driver replays them here. On a terminal a live bar shows the epoch's steps and
running loss; every epoch ends with one line of metrics either way.

    p = TrainProgress()
    p.handle({"kind": "start", "task": "fp", "epochs": 4, "start_epoch": 0, "steps": 95})
    p.handle({"kind": "epoch", "task": "fp", "epoch": 1, "loss": 0.05, ...})
    p.close()
"""

from __future__ import annotations

from typing import Any


def epoch_line(m: dict[str, Any], epochs: int | None = None) -> str:
    """One readable line of an epoch's metrics."""
    of = f"/{epochs}" if epochs else ""
    parts = [f"{m['task']} epoch {m['epoch']}{of}", f"loss {m['loss']:.4f}"]
    detail = ", ".join(f"{k[5:]} {v:.4f}" for k, v in sorted(m.items())
                       if k.startswith("loss_") and isinstance(v, float))
    if detail:
        parts[-1] += f" ({detail})"
    if "val_loss" in m:
        parts.append(f"val {m['val_loss']:.4f} / {m['val_psnr']:.2f} dB")
    if "val_baseline_psnr" in m:
        parts.append(f"(trivial {m['val_baseline_psnr']:.2f} dB, gain {m['val_gain_db']:+.2f})")
    if "codebook_usage" in m:
        parts.append(f"codes {m['codebook_usage']:.0%} ppl {m['codebook_perplexity']:.1f}")
    parts.append(f"{m['clips_per_s']:.1f} clips/s")
    parts.append(f"lr {m['lr']:.2e}")
    if m.get("best"):
        parts.append("best")
    return "  ".join(parts)


class TrainProgress:
    """Renders training events on stderr with rich (a live bar only when ``enabled``)."""

    def __init__(self, *, enabled: bool = True, console: Any = None) -> None:
        from raystack.console import console as make_console

        self.console = console or make_console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._progress: Any = None
        self._bar: Any = None
        self._epochs: dict[str, int] = {}

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "start":
            self._epochs[event["task"]] = event["epochs"]
            # the data summary starts with the task ("fp: 12 videos at ...")
            line = event.get("data") or event["task"]
            if event.get("precision"):
                line += f" · {event['precision']}"
            self.console.print(line)
            if event.get("resumed_from"):
                self.console.print(f"{event['task']}: resuming after epoch {event['resumed_from']}"
                                   f" of {event['epochs']}")
            if event["start_epoch"] >= event["epochs"]:
                self.console.print(f"{event['task']}: all {event['epochs']} epochs done already")
        elif kind == "step":
            self._step(event)
        elif kind == "epoch":
            self._stop_bar()
            self.console.print(epoch_line(event, self._epochs.get(event["task"])))
        elif kind == "line":
            self._stop_bar()
            self.console.print(event["text"])

    def _step(self, e: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        desc = f"{e['task']} epoch {e['epoch']}/{self._epochs.get(e['task'], '?')}"
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True,
            )
            self._progress.start()
            self._bar = self._progress.add_task(desc, total=e["steps"], loss=e["loss"])
        self._progress.update(self._bar, description=desc, completed=e["step"],
                              total=e["steps"], loss=e["loss"])

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._bar = None

    def close(self) -> None:
        self._stop_bar()
