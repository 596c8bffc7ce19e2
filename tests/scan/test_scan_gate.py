"""Motion gating and stride in the worker: a clip that moves for its first half and stands
still for its second, scored ungated, gated, strided and both, without Ray."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from raystack.archive import list_archive, materialise
from raystack.scan.manifest import summarize
from raystack.scan.plan import plan_units
from raystack.scan.probe import probe_archive
from raystack.scan.worker import UnitScorer
from raystack.store import Store

N, MOVING, SIZE = 40, 20, 64  # as the half_static fixture writes them (conftest.py)


def _units(archive, context, segment=512):
    sources = list_archive(archive)
    return plan_units(probe_archive(sources), context=context, segment_frames=segment,
                      sources=sources).units


class Counter:
    """Counts the target frames a model's score_batch is given."""

    def __init__(self, model):
        self.n, self._inner = 0, model.score_batch

        def counted(frames, flows=None, **kw):
            self.n += len(frames)
            return self._inner(frames, flows, **kw)

        model.score_batch = counted


def _scorer(ckpts, **kw):
    s = UnitScorer([ckpts["fp"], ckpts["fr"]], threads=1, chunk_frames=8, prefetch_chunks=0,
                   run_id="g", **kw)
    return s, {k: Counter(m) for k, m in s.scorer.models.items()}


def _stream(table, stream):
    t = table.filter(pc.equal(table["model"], stream))
    return t["frame"].to_numpy(), t["psnr"].to_numpy(), t["gated"].to_numpy(zero_copy_only=False)


def test_gated_frames_skip_the_models_and_carry_the_flag(tiny_checkpoints, half_static):
    plain, plain_calls = _scorer(tiny_checkpoints)
    gated, calls = _scorer(tiny_checkpoints, gate_floor=0.05)
    unit = _units(half_static, plain.context)[0]
    ref, got = plain(unit), gated(unit)
    scored = N - plain.context
    assert plain_calls["fp"].n == plain_calls["fr"].n == scored
    # The still half (from the frame after the last move) is gated: the models never see it.
    f, p, g = _stream(got, "fp")
    assert f.tolist() == list(range(plain.context, N))
    assert g.tolist() == [i >= MOVING for i in f]
    assert calls["fp"].n == calls["fr"].n == int((~g).sum()) == MOVING - plain.context
    # Ungated frames score exactly as without the gate; gated ones as copying the last frame
    # (the diff baseline of the same frame, the whole-frame region): a still frame's best.
    rf, rp, rg = _stream(ref, "fp")
    assert not rg.any()
    np.testing.assert_allclose(p[~g], rp[~g], atol=1e-4)
    np.testing.assert_allclose(p[g], _stream(got, "diff")[1][g], rtol=1e-5)
    assert p[g].min() > p[~g].max()
    # The baselines score every frame either way, never flagged.
    for s in ("diff", "motion"):
        bf, bp, bg = _stream(got, s)
        np.testing.assert_allclose(bp, _stream(ref, s)[1], atol=1e-4)
        assert not bg.any() and len(bf) == scored


def test_a_unit_with_every_frame_gated_never_calls_the_models(tiny_checkpoints, half_static):
    from raystack.flow import FLOW_SCALE
    from raystack.scoring import MSE_FLOOR

    s, calls = _scorer(tiny_checkpoints, gate_floor=0.05)
    unit = [u for u in _units(half_static, s.context, segment=10) if u.start >= MOVING][0]
    f, p, g = _stream(s(unit), "fr")
    # FR's trivial answer, zero flow, against a still frame's (near-)zero flow.
    assert g.all() and calls["fr"].n == calls["fp"].n == 0
    assert np.all(p > 60) and np.all(p <= -10 * np.log10(MSE_FLOOR)) and FLOW_SCALE == 10


def test_stride_scores_every_second_frame_with_context_and_flow_at_that_stride(
        tiny_checkpoints, half_static):
    from raystack.decode import open_reader, to_model_range
    from raystack.flow import create_flow, flow_to_model_input

    s, calls = _scorer(tiny_checkpoints, stride=2)
    assert s.context == 2 * s.scorer.context
    units = _units(half_static, s.context, segment=7)  # cut at odd frames: 8, 15, 22, ...
    t = [s(u) for u in units]
    f = np.concatenate([_stream(x, "fp")[0] for x in t])
    assert f.tolist() == list(range(8, N, 2))  # multiples of 2, whatever the unit bounds
    ts = np.concatenate([x.filter(pc.equal(x["model"], "fp"))["timestamp_s"].to_numpy()
                         for x in t])
    np.testing.assert_allclose(ts, f / 25.0)  # source times (a frame folder is 25 fps)
    assert calls["fp"].n == len(f)
    # The same scores as the video decoded whole, every second frame kept, flowed and scored.
    with open_reader(materialise(units[0].source), size=(SIZE, SIZE)) as r:
        u8 = r.read(0, N)[::2]
    ref = s.scorer.score(to_model_range(u8), flow_to_model_input(
        create_flow("dis", preset="fast")(u8)))
    for stream in ("fp", "fr", "motion"):
        got = np.concatenate([_stream(x, stream)[1] for x in t])
        np.testing.assert_allclose(got, ref[stream].psnr, atol=1e-3)


def test_gate_and_stride_together_and_the_manifest_counts(tiny_checkpoints, half_static,
                                                          tmp_path):
    s, calls = _scorer(tiny_checkpoints, stride=2, gate_floor=0.05, store=Store(tmp_path / "st"))
    rows = [s.run(u) for u in _units(half_static, s.context, segment=10)]
    t = Store(tmp_path / "st").read_table("scores", "g")
    f, _, g = _stream(t.sort_by("frame"), "fp")
    assert f.tolist() == list(range(8, N, 2))
    # The flow into frame i comes from frame i - 2: still once both are past the last move.
    assert g.tolist() == [i - 2 >= MOVING - 1 for i in f]
    assert calls["fp"].n == int((~g).sum())
    assert sum(r["scored_frames"] for r in rows) == len(f)
    assert sum(r["gated_frames"] for r in rows) == int(g.sum())
    summary = summarize(rows, run_id="g")
    assert summary.frames == N - 8 and summary.scored_frames == len(f)
    assert summary.gated_share == pytest.approx(g.mean())

    import io

    from rich.console import Console

    from raystack.scan.progress import render_summary

    out = Console(file=io.StringIO(), width=120)
    out.print(render_summary(summary))
    text = out.file.getvalue()
    assert "gated (learned models skipped)" in text and f"({100 * g.mean():.1f}%)" in text
    assert "frames scored by the models (stride)" in text


def test_a_gated_run_through_raystack_eval(tiny_checkpoints, half_static, tmp_path):
    """`raystack eval` on a gated, strided run: every scored frame is evaluated, the gated
    ones as the video's most normal (anomaly 0), beside the baselines on the same frames."""
    import json

    from typer.testing import CliRunner

    from raystack.cli import app
    from raystack.query import connect

    store = Store(tmp_path / "st")
    s, _ = _scorer(tiny_checkpoints, stride=2, gate_floor=0.05, store=store)
    sources = list_archive(half_static)
    store.write_table("videos", "g", "videos", probe_archive(sources))
    for u in plan_units(probe_archive(sources), context=s.context, segment_frames=10,
                        sources=sources).units:
        assert s.run(u)["status"] == "done"
    labels = np.zeros(N, np.int64)
    labels[10:16] = 1  # the square's last strides of motion
    np.save(tmp_path / "frame_labels_half.npy", labels)
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "st"), "--labels",
                                   str(tmp_path / "frame_labels_half.npy"), "--run-id", "g",
                                   "--fusion", "fp", "--sigma", "0", "-o",
                                   str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert doc["frames"] == len(range(8, N, 2)) and set(doc["baselines"]) == {"diff", "motion"}
    fused = connect(store).sql("SELECT frame, score FROM fused(fusion := 'fp', sigma := 0) "
                               "ORDER BY frame").fetchall()
    assert [sc for f, sc in fused if f - 2 >= MOVING - 1] == [0.0] * 9


def test_tiled_gating_scores_each_gated_tile_on_that_tile(tiny_checkpoints, half_static):
    from raystack.gate import trivial_psnr, trivial_tiles

    # A floor above any motion gates every tile of every frame, the moving half included,
    # so each frame's fp score is the worst tile's copy-last PSNR: the diff baseline's,
    # tile for tile (not copy-last over the whole working frame, which averages the tiles).
    s, calls = _scorer(tiny_checkpoints, gate_floor=1e9, tiles=True, tile_scale=0.5)
    unit = _units(half_static, s.context)[0]
    got = s(unit)
    assert s.grid((SIZE, SIZE)).count > 1 and calls["fp"].n == calls["fr"].n == 0
    f, p, g = _stream(got, "fp")
    diff = got.filter(pc.equal(got["model"], "diff"))
    fp = got.filter(pc.equal(got["model"], "fp"))
    assert g.all() and len(f) == N - s.context
    np.testing.assert_allclose(p, diff["psnr"].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(fp["psnr_mean"].to_numpy(), diff["psnr_mean"].to_numpy(),
                               rtol=1e-5)
    for col in ("box_x0", "box_y0", "box_x1", "box_y1"):
        assert fp[col].to_pylist() == diff[col].to_pylist()
    moving = f < MOVING  # the square's tile is worse than the frame as a whole
    whole = trivial_psnr("fp", *_moving_pair(half_static, s), None)
    assert p[moving][0] < whole - 1

    # trivial_tiles itself: each gated (target, tile) on its crop, NaN elsewhere (fr too)
    rng = np.random.default_rng(1)
    frames = rng.uniform(-1, 1, (4, 8, 12, 3)).astype(np.float32)
    flows = rng.uniform(-0.2, 0.2, (3, 2, 8, 12)).astype(np.float32)
    boxes = np.array([[0, 0, 6, 8], [6, 0, 12, 8]])
    gated = np.array([[True, False], [False, True]])  # targets are frames 2 and 3
    for stream in ("fp", "fr"):
        out = trivial_tiles(stream, frames, flows, boxes, gated)
        assert np.isnan(out[~gated]).all()
        ref = trivial_psnr(stream, frames[1:2, :, 0:6], frames[2:3, :, 0:6],
                           flows[1:2, :, :, 0:6])
        np.testing.assert_allclose(out[0, 0], ref[0], rtol=1e-6)
        ref = trivial_psnr(stream, frames[2:3, :, 6:12], frames[3:4, :, 6:12],
                           flows[2:3, :, :, 6:12])
        np.testing.assert_allclose(out[1, 1], ref[0], rtol=1e-6)


def _moving_pair(archive, scorer):
    """The first scored frame and the one before it, in [-1, 1] at the working size."""
    import cv2

    paths = sorted((archive / "cam").glob("*.png"))
    i = scorer.context
    h, w = scorer.grid((SIZE, SIZE)).work_size
    pair = [cv2.resize(cv2.imread(str(p))[..., ::-1], (w, h), interpolation=cv2.INTER_AREA)
            for p in paths[i - 1 : i + 1]]
    x = np.stack(pair).astype(np.float32) / 127.5 - 1
    return x[:1], x[1:]


def test_the_change_stage_gates_still_frames_without_their_flow(tiny_checkpoints, half_static):
    """With a change floor, the still half's flow is never computed (the backend sees only
    the moving frames), its frames are gated as the motion stage gates them, and every
    moving frame scores exactly as with the motion stage alone."""
    motion_only, _ = _scorer(tiny_checkpoints, gate_floor=0.05)
    both, calls = _scorer(tiny_checkpoints, gate_floor=0.05, gate_diff_floor=1.0)
    flowed = []
    inner = both._flow

    def counted(frames):
        flowed.append(len(frames) - 1)
        return inner(frames)

    both._flow = counted
    unit = _units(half_static, both.context)[0]
    ref, got = motion_only(unit), both(unit)
    # Only the pairs into the moving frames reach the flow backend (frame 0 has none), and
    # the first still pair, whose flow verifies the stretch the others then skip.
    assert sum(flowed) == (MOVING - 1) + 1
    f, p, g = _stream(got, "fp")
    rf, rp, rg = _stream(ref, "fp")
    assert g.tolist() == rg.tolist() == [i >= MOVING for i in f]
    assert calls["fp"].n == calls["fr"].n == int((~g).sum())
    np.testing.assert_allclose(p, rp, atol=1e-4)  # gated rows: copy-last either way
    # fr's gated answer and the motion baseline read zero flow on the still frames: the
    # flow of a lossless still frame, so the same scores
    for s in ("fr", "motion", "diff"):
        np.testing.assert_allclose(_stream(got, s)[1], _stream(ref, s)[1], atol=1e-3)


def test_without_a_motion_gate_the_change_stage_is_off(tiny_checkpoints):
    s, _ = _scorer(tiny_checkpoints, gate_diff_floor=1.0)
    assert s.gate_diff_floor is None and s.read_options.still is None


def test_the_change_stage_in_a_tiled_scan(tiny_checkpoints, half_static):
    """Tiled, a flowed pair verifies a stretch only when every tile of the grid is below
    the motion floor; the rows equal the motion stage's alone."""
    kw = {"gate_floor": 0.05, "tiles": True, "tile_scale": 0.5}
    motion_only, _ = _scorer(tiny_checkpoints, **kw)
    both, _ = _scorer(tiny_checkpoints, gate_diff_floor=1.0, **kw)
    flowed = []
    inner = both._flow
    both._flow = lambda frames: (flowed.append(len(frames) - 1), inner(frames))[1]
    unit = _units(half_static, both.context)[0]
    ref, got = motion_only(unit), both(unit)
    assert both.grid((SIZE, SIZE)).count > 1
    assert sum(flowed) == (MOVING - 1) + 1
    for s in ("fp", "fr", "diff", "motion"):
        f, p, g = _stream(got, s)
        rf, rp, rg = _stream(ref, s)
        assert f.tolist() == rf.tolist() and g.tolist() == rg.tolist()
        np.testing.assert_allclose(p, rp, atol=1e-3)
