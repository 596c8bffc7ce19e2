"""``raystack scan`` (an archive into a store, on Ray) and ``raystack status`` (a run's summary)."""

from __future__ import annotations

import typer

from raystack.cli.app import STORE_HELP, abs_path, app, default_of, fail
from raystack.exitcodes import run_exit_code
from raystack.scan.config import ScanConfig


def _d(name: str) -> str:
    return default_of(ScanConfig, name)


@app.command("scan")
def scan_cmd(
    archive: str = typer.Argument(
        None, callback=abs_path,
        help="A local folder, a video file or s3://bucket/prefix (or set it in --config)."),
    checkpoint: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--checkpoint", "-c", callback=abs_path,
        help="Model checkpoint (repeat for FP and FR)."),
    store: str = typer.Option(None, "--store", "-s", callback=abs_path,
                              help="Output store: folder or s3:// URI."),
    run_id: str = typer.Option(None, "--run-id", show_default="scan-UTCTIME",
                               help="Run id; the same id resumes a run."),
    workers: int = typer.Option(None, show_default="0: what fits the cluster",
                                help="Ray actors."),
    cpus_per_worker: int = typer.Option(None, show_default="0: CPUs / workers, else 1",
                                        help="CPUs (= torch threads) per actor."),
    gpus_per_worker: float = typer.Option(
        None, show_default="1 on a cluster with GPUs, else 0",
        help="GPUs per actor (0.5 packs two on a GPU; 0 keeps actors on the CPU)."),
    segment_frames: int = typer.Option(None, show_default=_d("segment_frames"),
                                       help="Frames scored per work unit."),
    flow: str = typer.Option(None, show_default=_d("flow"),
                             help="Flow backend for FR models: dis, farneback, ptlflow."),
    flow_model: str = typer.Option(None, "--flow-model", show_default="none",
                                   help="With --flow ptlflow: the ptlflow model, e.g. rapidflow."),
    flow_checkpoint: str = typer.Option(
        None, "--flow-checkpoint", callback=abs_path, show_default="none",
        help="With --flow ptlflow: its local checkpoint file (never downloaded)."),
    limit: int = typer.Option(None, show_default="all", help="Scan only the first N videos."),
    score_region: str = typer.Option(
        None, "--score-region", show_default=_d("score_region"),
        help="frame: PSNR of the whole frame (the papers'); patch: its worst patch; "
             "calibrated: the worst patch relative to the error normal footage has there "
             "(needs checkpoints from `raystack train` on this camera)."),
    tiles: bool = typer.Option(
        None, "--tiles/--no-tiles", show_default="no-tiles",
        help="Score overlapping tiles of a downscaled frame (worst tile per frame, with its "
             "box) instead of the whole frame resized to the model (the papers' protocol)."),
    tile_scale: float = typer.Option(
        None, "--tile-scale", show_default="0: auto, a 360-px-tall working frame",
        help="Downscale factor of the frame the tiles cover (2: 1920x1080 -> 960x540). "
             "Pick it so that a person is 20-60 px tall in the downscaled frame; the "
             "automatic one assumes 60-px people at 1080p."),
    tile_overlap: float = typer.Option(None, "--tile-overlap",
                                       show_default=_d("tile_overlap"),
                                       help="Fraction of a tile side neighbouring tiles share."),
    stride: int = typer.Option(
        None, "--stride", show_default=_d("stride"),
        help="Score every N-th frame; the model's context is taken at the same stride and "
             "flow between the frames used. Frames and times stay the source's."),
    gate: bool = typer.Option(
        None, "--gate/--no-gate", show_default="no-gate",
        help="Motion gating: frames whose motion is below the checkpoints' calibrated floor "
             "skip the learned models (rows flagged gated, scored by the trivial answer "
             "and counted normal; diff and motion still scored)."),
    gate_floor: float = typer.Option(
        None, "--gate-floor", show_default="the checkpoints' floor",
        help="Gate floor in px of worst-patch flow at the model's input (implies --gate)."),
    gate_diff_floor: float = typer.Option(
        None, "--gate-diff-floor", show_default="the checkpoints' floor",
        help="With --gate: frames whose worst-patch RMS change from the frame before is "
             "below this many 8-bit levels are gated without computing their flow; -1 "
             "computes every frame's flow."),
    presence: bool = typer.Option(
        None, "--presence/--no-presence", show_default="presence",
        help="Also score `presence`, foreground that stays where normal footage has none (a "
             "person standing where nobody stands), when the checkpoints record a scene prior. "
             "It reads the frames before each one it scores (24 tiled, 8 whole), so a tiled scan "
             "with it starts at frame 23: --no-presence scores short clips from the models' "
             "own context."),
    dry_run: bool = typer.Option(None, "--dry-run/--no-dry-run", show_default="no-dry-run",
                                 help="List, probe and plan only."),
    address: str = typer.Option(None, show_default="RAY_ADDRESS, else a private local Ray",
                                help="Ray cluster to join."),
    config: str = typer.Option(
        None, "--config", callback=abs_path,
        help="TOML config file (its scan table); options override it."),
    progress: bool = typer.Option(None, "--progress/--no-progress", show_default="progress",
                                  help="Live progress bar on a terminal."),
) -> None:
    """Score every frame of an archive into a Parquet store, on Ray; reruns resume.

    Exits 1 when any unit failed on its input (the summary lists each file and the
    reason), 2 on invalid settings or an archive with no videos, 3 when the store or
    archive is unavailable (disk full, read-only, S3 down) or units failed because their
    workers died (a rerun resumes).

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
            flow_model=flow_model, flow_checkpoint=flow_checkpoint,
            limit=limit, dry_run=dry_run, address=address, score_region=score_region,
            tiles=tiles, tile_scale=tile_scale, tile_overlap=tile_overlap, progress=progress,
            stride=stride, gate=gate, gate_floor=gate_floor, gate_diff_floor=gate_diff_floor,
            presence=presence,
        )
        result = scan(cfg)
    except (RaystackError, ValueError, OSError) as e:
        raise fail(e) from e
    except KeyboardInterrupt:
        typer.secho("interrupted: finished units are recorded; rerun with the same --run-id "
                    "to resume", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None
    print_result(result)
    if not result.dry_run and (code := run_exit_code(result.ok, result.summary.kinds_and_errors())):
        raise typer.Exit(code=code)


@app.command("status")
def status_cmd(
    store: str = typer.Argument(..., callback=abs_path, help=STORE_HELP),
    run: str = typer.Argument(None, help="The run to summarise (or --run-id RUN).",
                              show_default=False),
    run_id: str = typer.Option(None, "--run-id", help="The run to summarise."),
) -> None:
    """Print a run's summary from its manifest (exit 1 or 3 if units failed or are pending).

    Without a run, lists the store's runs.

    Exits 1 when units failed on their input or are pending, 3 when units failed because of
    the infrastructure (their workers died, the store or archive was unavailable; a rerun
    resumes).
    """
    from raystack.console import console
    from raystack.errors import RaystackError
    from raystack.scan import status
    from raystack.scan.progress import render_summary, resume_hint, run_settings_line
    from raystack.store import Store

    if run and run_id and run != run_id:
        raise fail(ValueError(f"two runs given: {run!r} and --run-id {run_id!r}; give one"))
    run_id = run_id or run
    try:
        if not run_id:
            runs = Store(store).runs()
            listing = ", ".join(runs) if runs else "none yet"
            msg = f"which run? runs in {store}: {listing} (raystack status {store} RUN)"
            raise ValueError(msg)
        summary = status(store, run_id)
        settings = run_settings_line(Store(store).read_run_json(run_id))
    except (RaystackError, ValueError, OSError) as e:
        raise fail(e) from e
    out = console()
    out.print(render_summary(summary))
    for line in (settings, resume_hint(summary)):
        if line:
            out.print(line, highlight=False, soft_wrap=True)
    if code := run_exit_code(summary.ok, summary.kinds_and_errors()):
        raise typer.Exit(code=code)

