"""``raystack eval`` (AUC against labels) and ``raystack report`` (the HTML report)."""

from __future__ import annotations

import typer

from raystack.cli.app import STORE_HELP, abs_path, app, fail, query_errors
from raystack.query.defaults import EVENTS


@app.command("eval")
def eval_cmd(
    store: str = typer.Argument(..., callback=abs_path,
        help=STORE_HELP),
    labels: str = typer.Option(
        ..., "--labels", callback=abs_path,
        help="frame_labels_*.npy, an ano_pred .mat, a test_frame_mask folder or labels.json "
             "(raystack synth)."
    ),
    run_id: str = typer.Option(..., "--run-id", help="The scan run to evaluate."),
    fusion: str = typer.Option(
        "auto", help="auto, a stream, weighted[:ALPHA[:A,B,...]], max[:A,...] or oracle[:A,B]."
    ),
    sigma: float = typer.Option(10.0, help="Gaussian smoothing in frames (0: none)."),
    normalise: str = typer.Option("video", help="Min-max per video (the protocol) or global."),
    skip_first: int = typer.Option(None, "--skip-first", help="Also skip frames below this index."),
    threshold: float = typer.Option(None, help="Threshold line drawn on the score curves."),
    out: str = typer.Option("eval", "--out", "-o", callback=abs_path,
        help="Folder for eval.json and the PNG plots."),
) -> None:
    """Frame-level micro and macro AUC of a run against labels (docs/evaluation.md).

    fusion oracle reproduces VADMamba's clip-level fusion: it picks each video's
    stream by its AUC against the TEST LABELS, so its numbers are not a valid
    detector score; every output it writes says so.

    Example: raystack eval /tmp/store --labels /tmp/a/frame_labels_synth.npy --run-id night1
    """
    from raystack.eval import evaluate

    try:
        result = evaluate(store, labels, run_id, fusion=fusion, sigma=sigma, normalise=normalise,
                          skip_first=skip_first, threshold=threshold, out_dir=out)
    except query_errors() as e:
        raise fail(e) from e
    if result.warning:
        typer.secho(f"WARNING: {result.warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.summary())
    for kind, path in result.files.items():
        typer.echo(f"{kind}: {path}")


@app.command("report")
def report_cmd(
    store: str = typer.Argument(..., callback=abs_path,
        help=STORE_HELP),
    run_id: str = typer.Option(..., "--run-id", help="The scan run to report."),
    out: str = typer.Option("report", "--out", "-o", callback=abs_path,
        help="Folder for index.html."),
    fusion: str = typer.Option(EVENTS.fusion, help="As for `raystack events`."),
    alpha: float = typer.Option(EVENTS.alpha, help="Weight of the first stream (weighted fusion)."),
    sigma: float = typer.Option(EVENTS.sigma, help="Temporal smoothing of the scores, in frames."),
    threshold: float = typer.Option(EVENTS.threshold, min=0.0, max=1.0,
                                    help="Fixed threshold on the [0, 1] anomaly score."),
    calibrated: str = typer.Option(None, help="Use this calibrated threshold instead."),
    min_frames: int = typer.Option(EVENTS.min_frames, help="Drop events shorter than this."),
    merge_gap: int = typer.Option(EVENTS.merge_gap,
                                  help="Merge events at most this many frames apart."),
    labels: str = typer.Option(None, callback=abs_path,
        help="Frame labels (.npy, .mat, mask folder) to mark."),
) -> None:
    """Write an HTML report folder: index (summary, events, videos), a page per video.

    Open OUT/index.html. Times are seconds from each video's start, with a UTC
    clock estimated from the file's mtime. When some source videos cannot be read
    for thumbnails the report is still written, names them and the archive, and
    exits 1 (files moved or broken) or 3 (the archive's storage unreachable; rerun
    later); an unknown run or store exits 2 (docs/report.md).

    The event defaults are those of the SQL events() macro and `raystack events`.

    Example: raystack report /tmp/store --run-id night1 --out /tmp/report
    """
    from raystack.errors import RaystackError
    from raystack.eval import load_labels_for_run
    from raystack.report import ReportOptions, build_report

    opts = ReportOptions(fusion=fusion, alpha=alpha, sigma=sigma, threshold=threshold,
                         threshold_name=calibrated, min_frames=min_frames, merge_gap=merge_gap)
    try:
        per_video = load_labels_for_run(store, run_id, labels) if labels else None
        report = build_report(store, run_id, out, opts, labels=per_video)
    except (RaystackError, ValueError, OSError) as e:
        raise fail(e) from e
    typer.echo(f"report: {report.path} ({report.pages} pages, {report.events} events)")
    for w in report.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    for uri, why in report.missing_sources.items():
        typer.secho(f"warning: missing source {uri}: {why}", fg=typer.colors.YELLOW, err=True)
    if code := _missing_sources_code(report.missing_sources):
        raise typer.Exit(code=code)


def _missing_sources_code(missing: dict[str, str]) -> int:
    """0 for a complete report; else name the archive the missing sources lie in and pick
    3 when the storage was away (rerun later) or 1 when files are gone (docs/cli.md)."""
    from raystack.exitcodes import FAILED, OK, UNAVAILABLE
    from raystack.report.thumbs import is_outage

    if not missing:
        return OK
    archive = _common_folder(list(missing))
    outage = any(is_outage(why) for why in missing.values())
    what = ("was unreachable; rerun the report once it is reachable" if outage else
            "could not be read (was it moved or unmounted?); rerun the report where it is")
    typer.secho(f"warning: the archive {archive} ({len(missing)} source video(s)) {what} "
                "to fill in the thumbnails; scores and events are complete",
                fg=typer.colors.YELLOW, err=True)
    return UNAVAILABLE if outage else FAILED


def _common_folder(uris: list[str]) -> str:
    """The deepest folder (or s3:// prefix) holding every one of ``uris``."""
    parts = [u.split("/")[:-1] for u in uris]
    common = parts[0]
    for p in parts[1:]:
        n = 0
        while n < min(len(common), len(p)) and common[n] == p[n]:
            n += 1
        common = common[:n]
    return "/".join(common) or "/"
