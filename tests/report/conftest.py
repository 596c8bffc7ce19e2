"""A tiny real archive and a store of score rows with one clear dip per video."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from raystack.store import Store, table_schema


def write_run(store: Store, videos: pa.Table, run: str = "r1", seed: int = 0) -> dict:
    """fp and fr score rows from frame 16 with a dip over frames 25-32 of every video."""
    rng = np.random.default_rng(seed)
    store.write_table("videos", run, "videos", videos)
    dips = {}
    for row in videos.to_pylist():
        frames = np.arange(16, row["frames"])
        psnr = 32 + rng.normal(0, 0.05, len(frames))
        psnr[(frames >= 25) & (frames <= 32)] -= 6
        dips[row["video_id"]] = (25, 32)
        for model, off in (("fp", 0.0), ("fr", 1.0)):
            t = pa.table({
                "run_id": [run] * len(frames), "video_id": [row["video_id"]] * len(frames),
                "frame": frames, "timestamp_s": frames / row["fps"],
                "model": [model] * len(frames), "psnr": (psnr + off).astype(np.float32),
                "aux": [None] * len(frames)}, schema=table_schema("scores", 1))
            store.write_table("scores", run, f"{row['video_id']}-{model}", t)
    return dips


REGION = ("box_x0", "box_y0", "box_x1", "box_y1", "patch_x0", "patch_y0", "patch_x1", "patch_y1")


def write_region_run(store: Store, videos: pa.Table, regions: dict, run: str = "r1",
                     seed: int = 0) -> dict:
    """As :func:`write_run`, in schema v2 with region columns: ``regions[(video_id, model)]``
    is (tile box, patch box or None) for every frame of the dip, NULL elsewhere."""
    written = write_run(store, videos, run, seed)
    for row in videos.to_pylist():
        for model in ("fp", "fr"):
            name = f"{row['video_id']}-{model}"
            t = store.read_table("scores", run).filter(
                pc.equal(pc.field("video_id"), row["video_id"]) & pc.equal(pc.field("model"),
                                                                           model))
            tile, patch = regions.get((row["video_id"], model), (None, None))
            in_dip = [25 <= f <= 32 for f in t.column("frame").to_pylist()]
            for i, col in enumerate(REGION):
                box = tile if i < 4 else patch
                vals = pa.array([box[i % 4] if (box and d) else None for d in in_dip], pa.int32())
                t = t.set_column(t.column_names.index(col), t.schema.field(col), vals)
            store.write_table("scores", run, name, t)
    return written


@pytest.fixture(name="write_region_run")
def write_region_run_fixture():
    """The :func:`write_region_run` helper, for tests."""
    return write_region_run


@pytest.fixture(name="write_run")
def write_run_fixture():
    """The :func:`write_run` helper, for tests (conftest modules are not importable)."""
    return write_run


@pytest.fixture(scope="session")
def scanned_store(tmp_path_factory):
    """A tiny real archive, its probed videos table, and score rows with one clear dip."""
    from raystack.scan.probe import probe_archive
    from raystack.synth import synthesize

    root = tmp_path_factory.mktemp("report")
    synthesize(root / "arch", n_train=0, n_test=2, frames=40, size=(64, 64), seed=3)
    videos = probe_archive(str(root / "arch" / "test"))
    store = Store(root / "store")
    dips = write_run(store, videos)
    return store, videos, dips


def colour_mask(img_bgr: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Pixels near a saturated box colour (each channel on the same side of the middle)."""
    hi = np.array(rgb[::-1]) > 127
    px = img_bgr[..., :3].astype(int)
    return np.where(hi, px > 170, px < 100).all(axis=-1)


def edge_share(mask: np.ndarray, box: tuple[int, int, int, int], slack: int = 2) -> float:
    """Share of the positions along ``box``'s four edges (x1/y1 exclusive) with a ``mask``
    pixel within ``slack`` pixels across the edge: 1.0 when the box is outlined all round."""
    x0, y0, x1, y1 = box
    hits = []
    for y in (y0, y1 - 1):
        band = mask[max(y - slack, 0):y + slack + 1, x0:x1]
        hits.append(band.any(axis=0))
    for x in (x0, x1 - 1):
        band = mask[y0:y1, max(x - slack, 0):x + slack + 1]
        hits.append(band.any(axis=1))
    return float(np.concatenate(hits).mean())


@pytest.fixture(name="pixels")
def pixels_fixture():
    """Pixel checks of drawn boxes: ``magenta(img)``/``cyan(img)`` masks (the patch and tile
    colours of raystack.report.boxes) and ``edge_share``."""
    import types

    from raystack.report.boxes import COLOURS

    return types.SimpleNamespace(magenta=lambda img: colour_mask(img, COLOURS["patch"]),
                                 cyan=lambda img: colour_mask(img, COLOURS["tile"]),
                                 edge_share=edge_share)
