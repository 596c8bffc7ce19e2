"""Live progress of a scan and its final summary table, with ``rich``.

On a terminal a live bar shows units, frames, frames/s, ETA and failures; elsewhere (CI,
``ray job submit`` logs) the same figures go out as one plain line every ``log_every_s``.
:func:`render_summary` draws the table that ``raystack scan`` prints at the end and
``raystack status`` prints later from the manifest.

    with ScanProgress(total_units=40, total_frames=20_000) as p:
        p.advance(frames=512)               # one unit done
        p.advance(frames=0, failed=True)    # one unit failed
    console.print(render_summary(summary))
"""

from __future__ import annotations

import time
from typing import Any

from raystack.scan.manifest import STAGES, ScanSummary

MAX_FAILURES_SHOWN = 50


def _fmt_s(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


class ScanProgress:
    """Progress of the units of one scan (a context manager)."""

    def __init__(
        self,
        total_units: int,
        total_frames: int,
        *,
        enabled: bool = True,
        console: Any = None,
        log_every_s: float = 30.0,
        description: str = "scan",
    ) -> None:
        from raystack.console import console as make_console

        self.total_units = total_units
        self.total_frames = total_frames
        self.units = 0
        self.frames = 0
        self.failed = 0
        self.retries = 0
        self.enabled = enabled
        self.console = console or make_console(stderr=True)
        self.log_every_s = log_every_s
        self.description = description
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._progress: Any = None
        self._task: Any = None

    # --- figures -------------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def frames_per_s(self) -> float:
        e = self.elapsed_s
        return self.frames / e if e > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.frames_per_s
        if rate <= 0:
            return None
        return max(0, self.total_frames - self.frames) / rate

    def line(self) -> str:
        eta = self.eta_s
        return (
            f"{self.description}: units {self.units}/{self.total_units}, frames "
            f"{self.frames}/{self.total_frames}, {self.frames_per_s:.1f} frames/s, ETA "
            f"{_fmt_s(eta) if eta is not None else '?'}, failures {self.failed}, "
            f"retries {self.retries}"
        )

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> ScanProgress:
        self._t0 = self._last_log = time.perf_counter()
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("units {task.completed:.0f}/{task.total:.0f}"),
                TextColumn("frames {task.fields[frames]}/{task.fields[total_frames]}"),
                TextColumn("{task.fields[fps]:.1f} frames/s"),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("[red]failed {task.fields[failed]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description, total=self.total_units, frames=0,
                total_frames=self.total_frames, fps=0.0, eta="?", failed=0,
            )
        elif self.enabled:
            self.console.print(self.line(), highlight=False, soft_wrap=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
            self._progress = None
        elif self.enabled:
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def advance(self, *, frames: int = 0, failed: bool = False) -> None:
        """One unit finished (done or, with ``failed``, failed for good)."""
        self.units += 1
        self.frames += int(frames)
        self.failed += int(failed)
        self._refresh()

    def retry(self) -> None:
        """One attempt failed and the unit goes back in the queue."""
        self.retries += 1
        self._refresh()

    def _refresh(self) -> None:
        if self._progress is not None:
            eta = self.eta_s
            self._progress.update(
                self._task, completed=self.units, frames=self.frames, fps=self.frames_per_s,
                eta=_fmt_s(eta) if eta is not None else "?", failed=self.failed,
            )
        elif self.enabled and time.perf_counter() - self._last_log >= self.log_every_s:
            self._last_log = time.perf_counter()
            self.console.print(self.line(), highlight=False, soft_wrap=True)


def run_settings_line(doc: dict[str, Any]) -> str | None:
    """What a run.json says changes what was scored: the stride and the motion gate's floor
    (``status`` shows them, as the summary's gated and strided counts depend on them)."""
    cfg = doc.get("config") or {}
    parts = []
    if int(cfg.get("stride") or 1) > 1:
        parts.append(f"stride {int(cfg['stride'])} (one frame in {int(cfg['stride'])} scored)")
    if cfg.get("gate") and cfg.get("gate_floor"):
        parts.append(f"motion gating on, floor {float(cfg['gate_floor']):.3g} px of worst-patch "
                     "flow")
        if float(cfg.get("gate_diff_floor") or -1) > 0:
            parts.append(f"change stage on, floor {float(cfg['gate_diff_floor']):.3g} levels "
                         "(still stretches skip their flow)")
    return "settings: " + "; ".join(parts) if parts else None


def resume_hint(s: ScanSummary) -> str | None:
    """What to do about units not done: the same scan command resumes the run."""
    if s.ok:
        return None
    what = " and ".join(x for x in (f"{len(s.failed)} failed" if s.failed else "",
                                    f"{s.pending} pending" if s.pending else "") if x)
    return (f"{what} units: rerun the same `raystack scan` command with --run-id {s.run_id} "
            "to resume (done units are skipped)")


def render_summary(s: ScanSummary, *, wall_s: float | None = None) -> Any:
    """A ``rich`` renderable: the figures of a run, then its failures (file and reason).

    Args:
        s: the summary (from :func:`raystack.scan.manifest.summarize`).
        wall_s: wall time of this invocation; default: first start to last finish in the
            manifest (which spans all resumes of the run).
    """
    from rich.console import Group
    from rich.table import Table

    wall = s.wall_s if wall_s is None else wall_s
    t = Table(title=f"scan {s.run_id}", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("units done", f"{s.done}/{s.planned}")
    t.add_row("units failed", f"[red]{len(s.failed)}[/red]" if s.failed else "0")
    if s.pending:
        t.add_row("units pending", f"[yellow]{s.pending}[/yellow]")
    t.add_row("videos skipped (too short to score)",
              f"[yellow]{len(s.skipped)}[/yellow]" if s.skipped else "0")
    if s.warnings:
        t.add_row("units with warnings", f"[yellow]{len(s.warnings)}[/yellow]")
    t.add_row("frames scored", f"{s.frames:,}")
    if s.scored_frames and s.scored_frames != s.frames:  # a strided scan
        t.add_row("frames scored by the models (stride)", f"{s.scored_frames:,}")
    if (share := s.gated_share) is not None and s.gated_frames:
        t.add_row("gated (learned models skipped)",
                  f"{s.gated_frames:,} ({100 * share:.1f}%)")
    t.add_row("score rows", f"{s.rows:,}")
    if s.attempts:
        t.add_row("attempts (units retried)", f"{s.attempts} ({s.retried_units})")
    # Without this invocation's wall time (status), the manifest's span: first unit start
    # to last unit end over all resumes, Ray's start-up and idle gaps between resumes left out.
    t.add_row("wall time" if wall_s is not None else "wall time (units, first start to last end)",
              _fmt_s(wall))
    t.add_row("frames/s", f"{s.frames / wall:.1f}" if wall > 0 else "-")
    busy = sum(s.stage_s.values())
    for k in STAGES:
        share = f" ({100 * s.stage_s[k] / busy:.0f}%)" if busy > 0 else ""
        t.add_row(f"worker {k[:-2]} time", f"{_fmt_s(s.stage_s[k])}{share}")
    parts: list[Any] = [t]
    for title, rows, last in ((f"failed units ({len(s.failed)})", s.failed, "reason"),
                              (f"skipped videos ({len(s.skipped)})", s.skipped, "reason"),
                              (f"units with warnings ({len(s.warnings)})", s.warnings,
                               "warning")):
        if rows:
            parts.append(_listing(title, ("unit", "file", last), rows))
    return Group(*parts)


def _listing(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Any:
    """A table of named units: the first MAX_FAILURES_SHOWN, then how many more."""
    from rich.table import Table

    f = Table(title=title, title_justify="left", expand=False)
    for c in columns:  # fold, never truncate: the file and the reason are what one acts on
        f.add_column(c, overflow="fold")
    for row in rows[:MAX_FAILURES_SHOWN]:
        f.add_row(*row)
    if len(rows) > MAX_FAILURES_SHOWN:
        f.add_row("...", f"and {len(rows) - MAX_FAILURES_SHOWN} more", *[""] * (len(columns) - 2))
    return f


def render_plan(plan: Any, run_id: str = "") -> Any:
    """A ``rich`` table of a plan (what ``--dry-run`` prints): units, frames, skipped videos."""
    from rich.console import Group
    from rich.table import Table

    t = Table(title=f"scan plan {run_id}".strip(), show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("videos", str(plan.videos))
    t.add_row("work units", str(len(plan.units)))
    t.add_row("frames to score (per stream)", f"{plan.frames:,}")
    t.add_row("model context (frames)", str(plan.context))
    t.add_row("segment (frames per unit)", str(plan.segment_frames))
    t.add_row("videos too short to score", str(len(plan.short_videos)))
    t.add_row("videos that failed probing", str(len(plan.probe_failures)))
    parts: list[Any] = [t]
    for title, outcomes in (("probe failures", plan.probe_failures),
                            ("videos too short to score", plan.short_videos)):
        if outcomes:
            parts.append(_listing(title, ("file", "reason"),
                                  [(o.uri, o.error or "") for o in outcomes]))
    return Group(*parts)


def print_result(result: Any, console: Any = None) -> None:
    """Print what ``scan`` did: the plan for a dry run, else the summary and failures."""
    from raystack.console import console as make_console

    console = console or make_console()
    if result.dry_run:
        console.print(render_plan(result.plan, result.run_id))
        return
    console.print(render_summary(result.summary, wall_s=result.wall_s))
    if result.workers:
        threads = sorted({w.get("threads") for w in result.workers})
        where = sorted({f"{w['device']}, batch {w['batch_size']}" for w in result.workers
                        if "device" in w})  # older run.json files lack them
        console.print(f"workers: {len(result.workers)} x {'/'.join(map(str, threads))} torch "
                      f"threads{' on ' + '; '.join(where) if where else ''}", highlight=False)
    if result.skipped_done:
        console.print(f"resumed: {result.skipped_done} units were already done and skipped")
    console.print(f"store: {result.store}  run: {result.run_id}")
