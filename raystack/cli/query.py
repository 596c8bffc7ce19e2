"""Query commands over a store: ``sql``, ``events``, ``runs`` and ``calibrate``."""

from __future__ import annotations

import typer

from raystack.cli.app import FORMAT_HELP, STORE_HELP, abs_path, app, emit, fail, query_errors
from raystack.query.defaults import EVENTS

FUSION_HELP = ("auto (the only stream, or weighted:0.5 of fp,fr or of m2s2l_app,m2s2l_mot), "
               "a stream (fp, fr, ...), weighted[:ALPHA[:A,B,...]] (ALPHA x the mean of all "
               "but the last + (1 - ALPHA) x the last) or max[:A,B,...].")


@app.command("sql")
def sql_cmd(
    store: str = typer.Argument(..., callback=abs_path, help=STORE_HELP),
    query: str = typer.Argument(None, help="SQL to run; without it, an interactive prompt."),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    out: str = typer.Option(None, "--out", "-o", callback=abs_path,
        help="Write the result to this file."),
    timeout: float = typer.Option(
        None, "--timeout", help="Seconds one statement may run (default 600; 0: no limit)."),
    memory_limit: str = typer.Option(
        None, "--memory-limit", help="DuckDB memory cap, e.g. 4GB (default: a quarter of RAM)."),
) -> None:
    """Run SQL on a store through the read-only analyst connection.

    Views: scores, videos, manifest, thresholds, runs. Table macros: normalised(),
    smoothed(sigma), fused(fusion, alpha, streams, sigma), flags(threshold |
    adaptive_k | threshold_name, ...), events(..., min_frames, merge_gap); all
    take run := 'RUN'. Without QUERY, an interactive prompt with line editing
    and history: statements end in ';'; .help lists the dot-commands (.tables,
    .schema, .mode, .quit). Ctrl-C cancels the running statement or clears the
    line; Ctrl-D or .quit leaves.

    Example: raystack sql /tmp/store "SELECT * FROM events(threshold := 0.7, min_frames := 10)"
    """
    import warnings

    from raystack.query import connect, run_sql
    from raystack.query.connection import QueryCancelled
    from raystack.query.prompt import run_prompt

    try:
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            con = connect(store, timeout_s=timeout, memory_limit=memory_limit)
        for w in skipped:
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        if query is None:
            from raystack.store import Store

            run_prompt(con, store, Store(store).runs())
            return
        table = run_sql(con, query)
        if table is None:
            typer.echo("ok")
        else:
            emit(table, fmt, out)
    except QueryCancelled as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=130) from None
    except KeyboardInterrupt:
        typer.secho("error: interrupted", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=130) from None
    except query_errors() as e:
        raise fail(e) from e


@app.command("events")
def events_cmd(
    store: str = typer.Argument(..., callback=abs_path, help=STORE_HELP),
    run_id: str = typer.Option(None, "--run-id", help="One run (default: every run)."),
    threshold: float = typer.Option(
        None, min=0.0, max=1.0, show_default=f"{EVENTS.threshold:g}",
        help="Fixed threshold on the [0, 1] score."),
    adaptive_k: float = typer.Option(None, "--adaptive-k", help="Per video: mean + K * std."),
    calibrated: str = typer.Option(None, help="A threshold stored by `raystack calibrate`."),
    min_frames: int = typer.Option(None, show_default=str(EVENTS.min_frames),
                                   help="Drop events spanning fewer frames (after merging)."),
    merge_gap: int = typer.Option(None, show_default=str(EVENTS.merge_gap),
                                  help="Merge events at most this many frames apart."),
    fusion: str = typer.Option(EVENTS.fusion, help=FUSION_HELP),
    sigma: float = typer.Option(None, show_default=f"{EVENTS.sigma:g}",
                                help="Gaussian smoothing in frames (0: none)."),
    roi: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--roi", metavar="X0,Y0,X1,Y1",
        help="Only frames pointing inside this box (source-frame pixels); repeat for more."),
    exclude: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--exclude", metavar="X0,Y0,X1,Y1",
        help="Ignore frames pointing inside this box, e.g. a busy road; repeatable."),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    out: str = typer.Option(None, "--out", "-o", callback=abs_path,
        help="Write the events to this file."),
) -> None:
    """List anomaly events: runs of frames whose fused score is above the threshold.

    The defaults are those of the SQL events() macro (raystack report uses the same).
    Each event names its peak frame (of the stream whose box most of its frames carry, the
    highest fused score before smoothing) and where in the frame it points (box_*: the
    worst tile, patch_*: the worst patch; empty for stores scanned before schema v2).
    --roi and --exclude test a frame by its patch's centre, else its tile's; frames scored
    whole, without a location, are always kept.

    Example: raystack events /tmp/store --run-id night1 --threshold 0.7 --min-frames 10
    --merge-gap 5 --fusion weighted:0.5 --roi 800,200,1100,700 --exclude 0,600,1920,1080
    """
    from raystack.query import find_events
    from raystack.query.regions import parse_box

    try:
        rois = [parse_box(b, "roi") for b in roi] if roi else None
        excluded = [parse_box(b, "exclude") for b in exclude] if exclude else None
        table = find_events(store, run_id=run_id, threshold=threshold, adaptive_k=adaptive_k,
                            calibrated=calibrated, min_frames=min_frames, merge_gap=merge_gap,
                            fusion=fusion, sigma=sigma, roi=rois, exclude=excluded)
        emit(table, fmt, out)
    except query_errors() as e:
        raise fail(e) from e


@app.command("runs")
def runs_cmd(
    store: str = typer.Argument(..., callback=abs_path, help=STORE_HELP),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    out: str = typer.Option(None, "--out", "-o", callback=abs_path, help="Write to this file."),
) -> None:
    """List the runs of a store: videos, score files (units), manifest files, score streams.

    The same as `raystack sql STORE "SELECT * FROM runs"`.

    Example: raystack runs /tmp/store
    """
    from raystack.query import connect, run_sql

    try:
        emit(run_sql(connect(store), "SELECT * FROM runs"), fmt, out)
    except query_errors() as e:
        raise fail(e) from e


@app.command("calibrate")
def calibrate_cmd(
    store: str = typer.Argument(..., callback=abs_path, help=STORE_HELP),
    normal_run: str = typer.Option(..., "--normal-run", help="A run over normal footage only."),
    false_alarm_rate: float = typer.Option(
        ..., "--false-alarm-rate", help="Target fraction of normal frames flagged, e.g. 0.01."
    ),
    name: str = typer.Option(..., "--name", help="Name to store the threshold under."),
    fusion: str = typer.Option(EVENTS.fusion, help="As for `raystack events`."),
    sigma: float = typer.Option(EVENTS.sigma, help="Gaussian smoothing in frames (0: none)."),
) -> None:
    """Calibrate a threshold on normal footage and store it as STORE/thresholds/NAME.json.

    Apply it with `raystack events STORE --calibrated NAME` or in SQL with
    events(threshold_name := 'NAME').

    Example: raystack calibrate /tmp/store --normal-run day1 --false-alarm-rate 0.01
    --name cams-1pct
    """
    from raystack.query import calibrate

    try:
        doc = calibrate(store, normal_run, false_alarm_rate, name=name, fusion=fusion, sigma=sigma)
    except query_errors() as e:
        raise fail(e) from e
    typer.echo(f"threshold {doc['name']} = {doc['value']:.6g} (fusion {doc['fusion']}, sigma "
               f"{doc['sigma']:g}): flags {doc['achieved_rate']:.4%} of the {doc['frames']} frames "
               f"of run {doc['run_id']} (target {doc['false_alarm_rate']:.4%})")
