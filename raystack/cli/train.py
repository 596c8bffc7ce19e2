"""``raystack train``: VQ-MaU or M2S2L models on normal footage, in-process or on Ray Train."""

from __future__ import annotations

import typer

from raystack.cli.app import abs_path, app, default_of, fail
from raystack.train.config import TrainConfig


def _d(name: str) -> str:
    return default_of(TrainConfig, name)


@app.command("train")
def train_cmd(
    archive: str = typer.Argument(
        None, callback=abs_path,
        help="Normal training videos: a folder, a file or s3://bucket/prefix."),
    model: str = typer.Option(None, "--model", "-m", show_default=_d("model"),
                              help="fp, fr, fp+fr (FP first) or m2s2l."),
    preset: str = typer.Option(None, show_default=_d("preset"),
                               help="Model size: tiny, small, ped2, avenue, shanghaitech, paper."),
    epochs: int = typer.Option(None, show_default="the model's recipe: small FP 3, FR 2; else 10",
                               help="Epochs (the cosine schedule spans all of them)."),
    batch_size: int = typer.Option(None, show_default=_d("batch_size"),
                                   help="Global batch, split over the workers."),
    clips_per_epoch: int = typer.Option(
        None, show_default="the model's recipe: small FP 2400, FR 1000; else 0",
        help="Clips drawn per epoch (0 = all)."),
    workers: int = typer.Option(None, show_default=_d("workers"),
                                help="0/1: in this process; N >= 2: Ray Train DDP."),
    storage: str = typer.Option(None, callback=abs_path, show_default=_d("storage"),
                                help="Runs folder or s3://bucket/prefix."),
    name: str = typer.Option(None, show_default="train-MODEL-UTCTIME",
                             help="Run name; the same name resumes the run."),
    export_dir: str = typer.Option(None, callback=abs_path, show_default="STORAGE/NAME",
                                   help="Where fp.pt / fr.pt go."),
    tiles: bool = typer.Option(
        None, "--tiles/--no-tiles", show_default="no-tiles",
        help="Train on img_size crops of frames downscaled by --tile-scale, as a tiled "
             "scan scores (--tiles), or on whole frames resized to img_size."),
    tile_scale: float = typer.Option(
        None, show_default=_d("tile_scale"),
        help="With --tiles: downscale of the source before cropping, as the scan's "
             "(0: automatic, 360-px working height; 2: 1920x1080 -> 960x540); pick it "
             "so that a person is 20-60 px tall in the downscaled frame."),
    amp: str = typer.Option(
        None, show_default=_d("amp"),
        help="Mixed precision: auto (bf16 on CUDA; on CPUs with AMX-BF16 for the paper "
             "presets), off, bf16, fp16."),
    cache_dir: str = typer.Option(None, callback=abs_path, show_default="in memory",
                                  help="Cache of decoded frames and flows (npy)."),
    address: str = typer.Option(None, show_default="RAY_ADDRESS, else a private Ray",
                                help="Ray cluster to join."),
    config: str = typer.Option(
        None, "--config", callback=abs_path,
        help="TOML config file (its train table); options override it."),
    progress: bool = typer.Option(None, "--progress/--no-progress", show_default="progress",
                                  help="Live progress bar on a terminal."),
) -> None:
    """Train VQ-MaU (FP, FR) or M2S2L models on normal footage; the same --name resumes.

    Every epoch leaves a checkpoint in STORAGE/NAME/; at the end the epoch with
    the lowest loss on held-out normal clips is exported as fp.pt / fr.pt (m2s2l.pt), the
    files `raystack scan --checkpoint` takes. Exits 1 when training failed, 2 on
    invalid settings or input, 130 when interrupted (rerun with the same --name to resume).

    Example: raystack train /tmp/a/train --model fp+fr --preset small --epochs 6
    --workers 2 --storage runs --name demo
    """
    from raystack.errors import RaystackError
    from raystack.train import load_train_config, train
    from raystack.train.config import resolve_name
    from raystack.train.ray_train import TrainingFailed

    try:
        # Named here, so an interrupted run can say which --name resumes it.
        cfg = resolve_name(load_train_config(
            config, archive=archive, model=model, preset=preset, epochs=epochs,
            batch_size=batch_size, clips_per_epoch=clips_per_epoch, workers=workers,
            storage=storage, name=name, export_dir=export_dir, cache_dir=cache_dir,
            address=address, progress=progress, tiles=tiles, tile_scale=tile_scale, amp=amp,
        ))
    except (RaystackError, ValueError, OSError) as e:
        raise fail(e) from e
    try:
        result = train(cfg)
    except TrainingFailed as e:
        raise fail(e) from e
    except (RaystackError, ValueError, OSError) as e:
        raise fail(e) from e
    except KeyboardInterrupt:
        typer.secho(f"interrupted: finished epochs are checkpointed in {cfg.storage}/{cfg.name}; "
                    f"rerun with --storage {cfg.storage} --name {cfg.name} to resume",
                    fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None
    typer.echo(result.summary())
    for line in result.warnings():
        typer.secho(line, fg=typer.colors.YELLOW, err=True)
