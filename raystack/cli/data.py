"""Data commands: ``raystack synth`` (a labelled synthetic archive) and ``raystack probe``."""

from __future__ import annotations

import typer

from raystack.cli.app import abs_path, app, fail


@app.command()
def synth(
    out: str = typer.Argument(
        ..., callback=abs_path, help="Folder to write the archive into (created if missing)."),
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
    overwrite: bool = typer.Option(
        False, "--overwrite/--no-overwrite", help="Replace an archive already in OUT."),
    idle: float = typer.Option(
        0.0, "--idle", help="Share of each test video showing the empty scene (no people, "
                            "no motion), e.g. 0.7 for a camera idle most of the night."),
    camera: int = typer.Option(
        None, "--camera", help="Seed of the static scene alone (default: --seed). Archives "
                               "of one --camera and other seeds are the same fixed camera "
                               "on other days."),
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
        raise fail(ValueError(f"--size must look like 256x256, got {size!r}")) from None
    try:
        info = synthesize(out, seed=seed, n_train=train, n_test=test, frames=frames, size=dims,
                          fps=fps, fmt=fmt, codec=codec, scene=scene, overwrite=overwrite,
                          idle=idle, camera=camera)
    except (RaystackError, ValueError) as e:
        raise fail(e) from e
    typer.echo(info.summary())


@app.command()
def probe(
    archive: str = typer.Argument(
        ..., callback=abs_path, help="A local folder, a single video file, or s3://bucket/prefix."
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", help="table (readable, default), csv, json or parquet."
    ),
    out: str = typer.Option(None, "--out", "-o", callback=abs_path,
        help="Write to this file instead of stdout."),
    frames_fps: float = typer.Option(25.0, help="Frame rate assumed for folders of frames."),
    quick: bool = typer.Option(False, "--quick/--no-quick",
        help="Skip decoding each video's last frame."),
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
    from raystack.errors import RaystackError
    from raystack.scan.probe import probe_archive
    from raystack.scan.probe_report import FORMATS, print_videos, write_videos

    if fmt not in FORMATS:
        raise fail(ValueError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}"))
    try:
        table = probe_archive(archive, frames_fps=frames_fps, verify=not quick, workers=workers)
        if fmt == "table" and out is None:
            print_videos(table)
        else:
            write_videos(table, "csv" if fmt == "table" else fmt, out)
    except (RaystackError, ValueError, OSError) as e:
        raise fail(e) from e
    unreadable = table.num_rows - table["probe_error"].null_count
    if unreadable:  # a job that checks an archive must see it is not all readable
        typer.secho(f"{unreadable} of {table.num_rows} videos could not be read (see "
                    "probe_error)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
