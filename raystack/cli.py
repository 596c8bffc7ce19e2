"""The ``raystack`` command line: each command maps 1:1 onto a library function.

The CLI parses arguments, calls the library, prints; it holds no logic of its own.
"""

from __future__ import annotations

import typer

from raystack.cli_errors import ExitCodeGroup, fail
from raystack.exitcodes import epilog, run_exit_code

app = typer.Typer(
    name="raystack",
    help="Scan video archives for anomalies with state-space (Mamba) models.",
    epilog=epilog(),
    cls=ExitCodeGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# --- data plane: synth, probe ---------------------------------------------------------


def _fail(err: Exception) -> typer.Exit:
    return fail(err)  # the code of raystack.exitcodes, the same for every command


@app.command()
def synth(
    out: str = typer.Argument(..., help="Folder to write the archive into (created if missing)."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same archive."),
    train: int = typer.Option(6, "--train", help="Number of normal training videos."),
    test: int = typer.Option(4, "--test", help="Number of test videos, one anomaly each."),
    frames: int = typer.Option(150, help="Frames per video."),
    size: str = typer.Option("256x256", help="Frame size as WIDTHxHEIGHT."),
    fps: float = typer.Option(25.0, help="Frames per second."),
    fmt: str = typer.Option(
        "mp4", "--format", help="mp4, avi or mkv files; or frames (jpg), png, tif folders."
    ),
    codec: str = typer.Option("mpeg4", help="Video codec: mpeg4 (mp4v) or h264."),
    scene: str = typer.Option(
        "park", help="park (cartoon, gross anomalies, fast) or street (realistic, subtle)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an archive already in OUT."),
) -> None:
    """Write a synthetic fixed-camera archive with labelled anomalies.

    OUT/train/ holds normal footage, OUT/test/ one anomaly per video.
    park: walkers cross a cartoon path; anomalies are a fast cyclist, a
    walker against the flow, a walker on the grass, an object out of nowhere.
    street: a photo-textured plaza in perspective with 5-15 articulated
    people; anomalies are a runner, a person standing in the flower bed,
    a cyclist, erratic motion, a thrown ball, a car.
    Per-frame labels (0 normal, 1 anomalous, over the sorted test videos)
    go to OUT/frame_labels_synth.npy; OUT/labels.json holds each test
    video's anomalous ranges and a pixel box per anomalous frame.

    Example: raystack synth /tmp/a --scene street && raystack probe /tmp/a
    """
    from raystack.errors import RaystackError
    from raystack.synth import synthesize

    try:
        w, _, h = size.lower().partition("x")
        dims = (int(w), int(h))
    except ValueError:
        raise _fail(ValueError(f"--size must look like 256x256, got {size!r}")) from None
    try:
        info = synthesize(out, seed=seed, n_train=train, n_test=test, frames=frames, size=dims,
                          fps=fps, fmt=fmt, codec=codec, scene=scene, overwrite=overwrite)
    except (RaystackError, ValueError) as e:
        raise _fail(e) from e
    typer.echo(info.summary())


@app.command()
def probe(
    archive: str = typer.Argument(
        ..., help="A local folder, a single video file, or s3://bucket/prefix."
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", help="table (readable, default), csv, json or parquet."
    ),
    out: str = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
    frames_fps: float = typer.Option(25.0, help="Frame rate assumed for folders of frames."),
    quick: bool = typer.Option(False, "--quick", help="Skip decoding each video's last frame."),
    workers: int = typer.Option(4, help="Videos probed at once."),
) -> None:
    """List an archive and print its videos table (frames, fps, size, errors).

    Videos are container files (mp4, avi, mkv, mov, webm, ...) and folders
    of images (jpg, png, tif: UCSD Ped2, Avenue, ShanghaiTech style). S3 uses
    the standard AWS settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    ~/.aws/config, ...). A file that cannot be read is listed with the
    reason, and the rest of the archive is still probed; the command then exits 1.

    Examples: raystack probe /tmp/a
    raystack probe s3://cams/2024 --format parquet --out videos.parquet
    """
    from raystack.archive import probe_archive
    from raystack.archive.report import FORMATS, print_videos, write_videos
    from raystack.errors import RaystackError

    if fmt not in FORMATS:
        raise _fail(ValueError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}"))
    try:
        table = probe_archive(archive, frames_fps=frames_fps, verify=not quick, workers=workers)
        if fmt == "table" and out is None:
            print_videos(table)
        else:
            write_videos(table, "csv" if fmt == "table" else fmt, out)
    except (RaystackError, ValueError, OSError) as e:
        raise _fail(e) from e
    unreadable = table.num_rows - table["probe_error"].null_count
    if unreadable:  # a job that checks an archive must see it is not all readable
        typer.secho(f"{unreadable} of {table.num_rows} videos could not be read (see "
                    "probe_error)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


# --- models and training: train -------------------------------------------------------


@app.command("train")
def train_cmd(
    archive: str = typer.Argument(
        None, help="Normal training videos: a folder, a file or s3://bucket/prefix."
    ),
    model: str = typer.Option(None, "--model", "-m", help="fp, fr, fp+fr (FP first) or m2s2l."),
    preset: str = typer.Option(None, help="Model size: tiny, small, ped2, avenue, ..."),
    epochs: int = typer.Option(None, help="Epochs (the cosine schedule spans all of them)."),
    batch_size: int = typer.Option(None, help="Global batch, split over the workers."),
    clips_per_epoch: int = typer.Option(None, help="Clips drawn per epoch (0 = all)."),
    workers: int = typer.Option(None, help="0/1: in this process; N >= 2: Ray Train DDP."),
    storage: str = typer.Option(None, help="Runs folder or s3://bucket/prefix."),
    name: str = typer.Option(None, help="Run name; the same name resumes the run."),
    export_dir: str = typer.Option(None, help="Where fp.pt / fr.pt go (default: the run)."),
    cache_dir: str = typer.Option(None, help="Cache of decoded frames and flows (npy)."),
    address: str = typer.Option(None, help="Ray cluster to join (default: a private Ray)."),
    config: str = typer.Option(
        None, "--config", help="TOML config file (its train table); options override it."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress bar."),
) -> None:
    """Train VQ-MaU (FP, FR) or M2S2L models on normal footage; the same --name resumes.

    Every epoch leaves a checkpoint in STORAGE/NAME/; at the end the epoch with
    the lowest loss on held-out normal clips is exported as fp.pt / fr.pt (m2s2l.pt), the
    files `raystack scan --checkpoint` takes. Exits 1 when training failed, 2 on
    invalid settings or input.

    Example: raystack train /tmp/a/train --model fp+fr --preset small --epochs 6
    --workers 2 --storage runs --name demo
    """
    from raystack.errors import RaystackError
    from raystack.train import load_train_config, train
    from raystack.train.ray_train import TrainingFailed

    try:
        cfg = load_train_config(
            config, archive=archive, model=model, preset=preset, epochs=epochs,
            batch_size=batch_size, clips_per_epoch=clips_per_epoch, workers=workers,
            storage=storage, name=name, export_dir=export_dir, cache_dir=cache_dir,
            address=address, progress=False if no_progress else None,
        )
        result = train(cfg)
    except TrainingFailed as e:
        raise _fail(e) from e
    except (RaystackError, ValueError, OSError) as e:
        raise _fail(e) from e
    typer.echo(result.summary())
    for line in result.warnings():
        typer.secho(line, fg=typer.colors.YELLOW, err=True)


# --- scan: scan, status ---------------------------------------------------------------


@app.command("scan")
def scan_cmd(
    archive: str = typer.Argument(
        None, help="A local folder, a video file or s3://bucket/prefix (or set it in --config)."
    ),
    checkpoint: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--checkpoint", "-c", help="Model checkpoint (repeat for FP and FR)."
    ),
    store: str = typer.Option(None, "--store", "-s", help="Output store: folder or s3:// URI."),
    run_id: str = typer.Option(None, "--run-id", help="Run id; the same id resumes a run."),
    workers: int = typer.Option(None, help="Ray actors (default: what fits the cluster)."),
    cpus_per_worker: int = typer.Option(None, help="CPUs (= torch threads) per actor."),
    gpus_per_worker: float = typer.Option(None, help="GPUs per actor (0 on CPU machines)."),
    segment_frames: int = typer.Option(None, help="Frames scored per work unit."),
    flow: str = typer.Option(None, help="Flow backend for FR models: dis, farneback, ptlflow."),
    limit: int = typer.Option(None, help="Scan only the first N videos."),
    score_region: str = typer.Option(
        None, "--score-region",
        help="frame: PSNR of the whole frame (the papers', default); patch: its worst patch."),
    dry_run: bool = typer.Option(None, "--dry-run", help="List, probe and plan only."),
    address: str = typer.Option(None, help="Ray cluster to join (default: a private local Ray)."),
    config: str = typer.Option(
        None, "--config", help="TOML config file (its scan table); options override it."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress bar."),
) -> None:
    """Score every frame of an archive into a Parquet store, on Ray; reruns resume.

    Exits 1 when any unit failed (the summary lists each file and the reason), 2 on
    invalid settings or an archive with no videos, 3 when the store or archive is
    unavailable (disk full, read-only, S3 down; a rerun resumes).

    Example: raystack scan /tmp/a/test -c fp.pt -c fr.pt --store /tmp/store --run-id night1
    """
    from raystack.errors import RaystackError
    from raystack.scan import load_scan_config, scan
    from raystack.scan.progress import print_result

    try:
        cfg = load_scan_config(
            config, archive=archive, checkpoints=tuple(checkpoint) if checkpoint else None,
            store=store, run_id=run_id, workers=workers, cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker, segment_frames=segment_frames, flow=flow,
            limit=limit, dry_run=dry_run, address=address, score_region=score_region,
            progress=False if no_progress else None,
        )
        result = scan(cfg)
    except (RaystackError, ValueError, OSError) as e:
        raise _fail(e) from e
    except KeyboardInterrupt:
        typer.secho("interrupted: finished units are recorded; rerun with the same --run-id "
                    "to resume", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None
    print_result(result)
    if not result.dry_run and (code := run_exit_code(result.ok, _errors(result.summary))):
        raise typer.Exit(code=code)


@app.command("status")
def status_cmd(
    store: str = typer.Argument(..., help="The store a scan wrote: folder or s3:// URI."),
    run_id: str = typer.Option(..., "--run-id", help="The run to summarise."),
) -> None:
    """Print a run's summary from its manifest (exit 1 if units failed or are pending)."""
    from rich.console import Console

    from raystack.errors import RaystackError
    from raystack.scan import status
    from raystack.scan.progress import render_summary

    try:
        summary = status(store, run_id)
    except (RaystackError, ValueError, OSError) as e:
        raise _fail(e) from e
    Console().print(render_summary(summary))
    if code := run_exit_code(summary.ok, _errors(summary)):
        raise typer.Exit(code=code)


def _errors(summary) -> list[str]:
    return [err for _, _, err in summary.failed]


# --- query and evaluation: sql, events, calibrate, eval, report ------------------------

_FORMAT_HELP = "table (default), csv, json or parquet (parquet needs --out)."


def _query_errors() -> tuple[type[Exception], ...]:
    from raystack.errors import RaystackError

    return (RaystackError, ValueError, OSError)


def _emit(table, fmt: str, out: str | None) -> None:
    from raystack.tableio import write_result

    text = write_result(table, fmt, out)
    typer.echo(f"wrote {table.num_rows} rows to {text}" if out else text,
               nl=not text.endswith("\n"))


@app.command("sql")
def sql_cmd(
    store: str = typer.Argument(..., help="A store: folder or s3:// URI."),
    query: str = typer.Argument(None, help="SQL to run; without it, an interactive prompt."),
    fmt: str = typer.Option("table", "--format", "-f", help=_FORMAT_HELP),
    out: str = typer.Option(None, "--out", "-o", help="Write the result to this file."),
    timeout: float = typer.Option(
        None, "--timeout", help="Seconds one statement may run (default 600; 0: no limit)."),
    memory_limit: str = typer.Option(
        None, "--memory-limit", help="DuckDB memory cap, e.g. 4GB (default: a quarter of RAM)."),
) -> None:
    """Run SQL on a store through the read-only analyst connection.

    Views: scores, videos, manifest, thresholds. Table macros: normalised(),
    smoothed(sigma), fused(fusion, alpha, streams, sigma), flags(threshold |
    adaptive_k | threshold_name, ...), events(..., min_frames, merge_gap); all
    take run := 'RUN'. Without QUERY, read statements ending in ';' until EOF
    or .quit (.tables lists views and macros). Ctrl-C cancels the running
    statement.

    Example: raystack sql /tmp/store "SELECT * FROM events(threshold := 0.7, min_frames := 10)"
    """
    import warnings

    from raystack.query import connect, run_sql
    from raystack.query.connection import QueryCancelled
    from raystack.query.output import repl

    try:
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            con = connect(store, timeout_s=timeout, memory_limit=memory_limit)
        for w in skipped:
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        if query is None:
            repl(con)
            return
        table = run_sql(con, query)
        if table is None:
            typer.echo("ok")
        else:
            _emit(table, fmt, out)
    except QueryCancelled as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=130) from None
    except KeyboardInterrupt:
        typer.secho("error: interrupted", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=130) from None
    except _query_errors() as e:
        raise _fail(e) from e


@app.command("events")
def events_cmd(
    store: str = typer.Argument(..., help="A store: folder or s3:// URI."),
    run_id: str = typer.Option(None, "--run-id", help="One run (default: every run)."),
    threshold: float = typer.Option(
        None, help="Fixed threshold on the [0, 1] score (default 0.5)."
    ),
    adaptive_k: float = typer.Option(None, "--adaptive-k", help="Per video: mean + K * std."),
    calibrated: str = typer.Option(None, help="A threshold stored by `raystack calibrate`."),
    min_frames: int = typer.Option(1, help="Drop events spanning fewer frames (after merging)."),
    merge_gap: int = typer.Option(0, help="Merge events at most this many frames apart."),
    fusion: str = typer.Option(
        "auto",
        help="auto (the only stream, or weighted:0.5 of fp,fr or of m2s2l_app,m2s2l_mot), "
             "a stream (fp, fr, ...), weighted[:ALPHA[:A,B]] or max[:A,B,...].",
    ),
    sigma: float = typer.Option(None, help="Gaussian smoothing in frames (default 10; 0: none)."),
    fmt: str = typer.Option("table", "--format", "-f", help=_FORMAT_HELP),
    out: str = typer.Option(None, "--out", "-o", help="Write the events to this file."),
) -> None:
    """List anomaly events: runs of frames whose fused score is above the threshold.

    Example: raystack events /tmp/store --run-id night1 --threshold 0.7 --min-frames 10
    --merge-gap 5 --fusion weighted:0.5
    """
    from raystack.query import find_events

    try:
        table = find_events(store, run_id=run_id, threshold=threshold, adaptive_k=adaptive_k,
                            calibrated=calibrated, min_frames=min_frames, merge_gap=merge_gap,
                            fusion=fusion, sigma=sigma)
        _emit(table, fmt, out)
    except _query_errors() as e:
        raise _fail(e) from e


@app.command("calibrate")
def calibrate_cmd(
    store: str = typer.Argument(..., help="A store: folder or s3:// URI."),
    normal_run: str = typer.Option(..., "--normal-run", help="A run over normal footage only."),
    false_alarm_rate: float = typer.Option(
        ..., "--false-alarm-rate", help="Target fraction of normal frames flagged, e.g. 0.01."
    ),
    name: str = typer.Option(..., "--name", help="Name to store the threshold under."),
    fusion: str = typer.Option("auto", help="As for `raystack events`."),
    sigma: float = typer.Option(10.0, help="Gaussian smoothing in frames (0: none)."),
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
    except _query_errors() as e:
        raise _fail(e) from e
    typer.echo(f"threshold {doc['name']} = {doc['value']:.6g} (fusion {doc['fusion']}, sigma "
               f"{doc['sigma']:g}): flags {doc['achieved_rate']:.4%} of the {doc['frames']} frames "
               f"of run {doc['run_id']} (target {doc['false_alarm_rate']:.4%})")


@app.command("eval")
def eval_cmd(
    store: str = typer.Argument(..., help="The scan's store: folder or s3:// URI."),
    labels: str = typer.Option(
        ..., "--labels", help="frame_labels_*.npy, an ano_pred .mat, or a test_frame_mask folder."
    ),
    run_id: str = typer.Option(..., "--run-id", help="The scan run to evaluate."),
    fusion: str = typer.Option(
        "auto", help="auto, a stream, weighted[:ALPHA[:A,B]], max[:A,...] or oracle[:A,B]."
    ),
    sigma: float = typer.Option(10.0, help="Gaussian smoothing in frames (0: none)."),
    normalise: str = typer.Option("video", help="Min-max per video (the protocol) or global."),
    skip_first: int = typer.Option(None, "--skip-first", help="Also skip frames below this index."),
    threshold: float = typer.Option(None, help="Threshold line drawn on the score curves."),
    out: str = typer.Option("eval", "--out", "-o", help="Folder for eval.json and the PNG plots."),
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
    except _query_errors() as e:
        raise _fail(e) from e
    if result.warning:
        typer.secho(f"WARNING: {result.warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.summary())
    for kind, path in result.files.items():
        typer.echo(f"{kind}: {path}")


# --- report ----------------------------------------------------------------------------


@app.command("report")
def report_cmd(
    store: str = typer.Argument(..., help="The scan's store: a folder or s3:// URI."),
    run_id: str = typer.Option(..., "--run-id", help="The scan run to report."),
    out: str = typer.Option("report", "--out", "-o", help="Folder for index.html."),
    fusion: str = typer.Option("auto", help="As for `raystack events`."),
    alpha: float = typer.Option(0.5, help="Weight of the first stream in weighted fusion."),
    sigma: float = typer.Option(10.0, help="Temporal smoothing of the scores, in frames."),
    threshold: float = typer.Option(0.7, help="Fixed threshold on the [0, 1] anomaly score."),
    calibrated: str = typer.Option(None, help="Use this calibrated threshold instead."),
    min_frames: int = typer.Option(5, help="Drop events shorter than this."),
    merge_gap: int = typer.Option(3, help="Merge events at most this many frames apart."),
    labels: str = typer.Option(None, help="Frame labels (.npy, .mat, mask folder) to mark."),
) -> None:
    """Write a self-contained HTML report: summary, score curves, events with thumbnails.

    Example: raystack report /tmp/store --run-id night1 --out /tmp/report
    """
    from raystack.errors import RaystackError
    from raystack.eval import load_labels_for_run
    from raystack.report import ReportOptions, write_report

    opts = ReportOptions(fusion=fusion, alpha=alpha, sigma=sigma, threshold=threshold,
                         threshold_name=calibrated, min_frames=min_frames, merge_gap=merge_gap)
    try:
        per_video = load_labels_for_run(store, run_id, labels) if labels else None
        page = write_report(store, run_id, out, opts, labels=per_video)
    except (RaystackError, ValueError, OSError) as e:
        raise _fail(e) from e
    typer.echo(f"report: {page}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
