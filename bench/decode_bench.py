"""Decode throughput on the synthetic archive: decord vs PyAV, sequential and random.

For each archive variant (codec x resolution) it measures, as the median of several
repeats, frames per second of:

* sequential reads in 32-frame chunks through raystack's readers (``DecordReader``,
  ``PyAVReader``), with the frames resized to 256x256 and at source size, and strided
  (``_step2``, ``_step4``: every 2nd or 4th frame returned, as ``--stride`` reads;
  frames/s of source frames gone through);
* the raw libraries without raystack around them (decord ``vr[i]`` and ``get_batch``,
  PyAV ``to_ndarray`` and swscale-side resizing), to see what the wrappers cost;
* random access: 16-frame clips at random starts, through each reader.

The sequential reader of :func:`raystack.decode.open_reader` is chosen from these
numbers (``SEQUENTIAL_BACKEND``). Results go to ``bench/results/decode.json``.

    flock /tmp/raystack-cpu.lock .venv/bin/python bench/decode_bench.py
    flock /tmp/raystack-cpu.lock .venv/bin/python bench/decode_bench.py --frames 150 --repeats 3
    .venv/bin/python bench/decode_bench.py --variants h264:1280x720,mpeg4:1280x720,h264:1920x1080 \
        --frames 150 --videos 1 --repeats 3 --no-open-cost --out bench/results/decode_camera.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raystack.decode import DecordReader, PyAVReader, resize_rgb  # noqa: E402
from raystack.synth import synthesize  # noqa: E402

CHUNK = 32
OUT_SIZE = (256, 256)


def machine() -> dict:
    import av
    import cv2
    import decord
    from machine_info import machine as base

    return base(decord=decord.__version__, av=av.__version__,
                ffmpeg_in_av=".".join(map(str, av.library_versions["libavcodec"])),
                opencv=cv2.__version__, numpy=np.__version__)


def seq_reader(cls, size, threads: int = 0, step: int = 1):
    """Sequential chunks; with ``step``, a strided scan's reads (every step-th frame
    returned; frames/s counts the source frames gone through)."""
    def run(path: Path) -> None:
        with cls(str(path), size=size, threads=threads) as r:
            for a in range(0, r.num_frames, CHUNK):
                r.read(a, min(a + CHUNK, r.num_frames), step)

    return run


def raw_decord_index(size):
    def run(path: Path) -> None:
        import decord

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
        for i in range(len(vr)):
            resize_rgb(vr[i].asnumpy(), size)

    return run


def raw_decord_batch(size):
    def run(path: Path) -> None:
        import decord

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
        for a in range(0, len(vr), CHUNK):
            for f in vr.get_batch(list(range(a, min(a + CHUNK, len(vr))))).asnumpy():
                resize_rgb(f, size)

    return run


def raw_pyav(size, swscale: bool = False):
    def run(path: Path) -> None:
        import av

        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for f in c.decode(s):
                if swscale and size:
                    f.reformat(
                        width=size[0], height=size[1], format="rgb24", interpolation="AREA"
                    ).to_ndarray()
                else:
                    resize_rgb(f.to_ndarray(format="rgb24"), size)

    return run


def random_clips(cls, frames: int, n: int = 12, length: int = 16):
    starts = np.random.default_rng(0).integers(0, frames - length, n)

    def run(path: Path) -> None:
        with cls(str(path), size=OUT_SIZE) as r:
            for s in starts:
                r.read(int(s), int(s) + length)

    return run, n * length


def bench_variant(files: list[Path], frames: int, repeats: int,
                  only: tuple[str, ...] = ()) -> dict:
    """Frames/s of every configuration; repeats are interleaved across configurations so
    that load from other processes on a shared machine hits all of them alike."""
    cases: dict[str, tuple] = {}
    for size, tag in ((OUT_SIZE, "256"), (None, "src")):
        for threads, ttag in ((0, ""), (1, "_1thread")):
            cases[f"seq_decord_reader_{tag}{ttag}"] = (
                seq_reader(DecordReader, size, threads),
                frames,
            )
            cases[f"seq_pyav_reader_{tag}{ttag}"] = (seq_reader(PyAVReader, size, threads), frames)
    for step in (2, 4):
        for threads, ttag in ((0, ""), (1, "_1thread")):
            for cls, name in ((DecordReader, "decord"), (PyAVReader, "pyav")):
                cases[f"seq_{name}_reader_256_step{step}{ttag}"] = (
                    seq_reader(cls, OUT_SIZE, threads, step), frames)
    cases["raw_decord_index_256"] = (raw_decord_index(OUT_SIZE), frames)
    cases["raw_decord_batch32_256"] = (raw_decord_batch(OUT_SIZE), frames)
    cases["raw_pyav_256"] = (raw_pyav(OUT_SIZE), frames)
    cases["raw_pyav_swscale_256"] = (raw_pyav(OUT_SIZE, swscale=True), frames)
    for cls, name in ((DecordReader, "decord"), (PyAVReader, "pyav")):
        cases[f"random16_{name}_reader_256"] = random_clips(cls, frames)
    if only:
        cases = {k: v for k, v in cases.items() if any(o in k for o in only)}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, (fn, _n) in cases.items():
            t = time.perf_counter()
            for p in files:
                fn(p)
            times[k].append(time.perf_counter() - t)
    res: dict[str, dict[str, float]] = {}
    for k, (_fn, n) in cases.items():
        total = n * len(files)
        res[k] = {
            "median": round(total / statistics.median(times[k]), 1),
            "best": round(total / min(times[k]), 1),
        }
    tags = ("256", "src", "256_1thread", "src_1thread", "256_step2", "256_step4",
            "256_step2_1thread", "256_step4_1thread")
    for tag in tags:
        if f"seq_pyav_reader_{tag}" not in res or f"seq_decord_reader_{tag}" not in res:
            continue
        a, b = res[f"seq_pyav_reader_{tag}"], res[f"seq_decord_reader_{tag}"]
        res[f"ratio_pyav_over_decord_seq_{tag}"] = {
            s: round(a[s] / b[s], 3) for s in ("median", "best")
        }
    return res


def open_cost(path: Path, repeats: int) -> dict:
    """Seconds to open a reader (decord indexes every packet; PyAV reads the header)."""
    out = {"frames": None, "bytes": path.stat().st_size}
    for cls, name in ((DecordReader, "decord"), (PyAVReader, "pyav")):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            with cls(str(path), size=OUT_SIZE) as r:
                times.append(time.perf_counter() - t)
                out["frames"] = r.num_frames
        out[f"{name}_open_s"] = round(statistics.median(times), 5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per video")
    ap.add_argument("--videos", type=int, default=2, help="videos per variant")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--long-frames", type=int, default=6000, help="frames of the open-cost video")
    ap.add_argument("--variants", default="mpeg4:256x256,mpeg4:640x480,h264:640x480",
                    help="codec:WxH archive variants, comma-separated (camera resolutions: "
                         "h264:1280x720,h264:1920x1080)")
    ap.add_argument("--no-open-cost", action="store_true",
                    help="skip the open-cost measurement (a 6,000-frame video)")
    ap.add_argument("--only", default="",
                    help="comma-separated substrings: run only the cases whose name holds one "
                         "(e.g. step,_reader_256: the strided reads and their stride-1 rows)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "decode.json"))
    args = ap.parse_args()

    variants = []
    for v in args.variants.split(","):
        codec, size = v.split(":")
        variants.append((codec, tuple(int(x) for x in size.split("x"))))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for codec, size in variants:
            name = f"{codec}_{size[0]}x{size[1]}"
            root = Path(tmp) / name
            synthesize(
                root,
                seed=0,
                n_train=args.videos,
                n_test=0,
                frames=args.frames,
                size=size,
                codec=codec,
            )
            files = sorted((root / "train").glob("*.mp4"))
            results[name] = bench_variant(files, args.frames, args.repeats,
                                          tuple(o for o in args.only.split(",") if o))
            print(f"done {name}", file=sys.stderr)
        # Opening cost against length: decord's open scans the whole file.
        opens = {}
        if not args.no_open_cost:
            short = Path(tmp) / "short"
            synthesize(short, seed=0, n_train=1, n_test=0, frames=args.frames)
            opens["mpeg4_256x256_short"] = open_cost(
                next((short / "train").glob("*.mp4")), args.repeats)
            long_root = Path(tmp) / "long"
            synthesize(long_root, seed=0, n_train=1, n_test=0, frames=args.long_frames)
            opens["mpeg4_256x256_long"] = open_cost(
                next((long_root / "train").glob("*.mp4")), args.repeats
            )

    keys = list(next(iter(results.values())))
    width = max(map(len, keys))
    print(
        f"{'frames/s: median (best) of ' + str(args.repeats):<{width}}  "
        + "  ".join(f"{n:>20}" for n in results)
    )
    for k in keys:
        cells = [f"{results[n][k]['median']:.2f} ({results[n][k]['best']:.2f})" for n in results]
        print(f"{k:<{width}}  " + "  ".join(f"{c:>20}" for c in cells))
    print("\nopen cost (median s):")
    for k, v in opens.items():
        print(
            f"  {k}: {v['frames']} frames, {v['bytes'] / 1e6:.1f} MB: "
            f"decord {v['decord_open_s'] * 1e3:.1f} ms, pyav {v['pyav_open_s'] * 1e3:.1f} ms"
        )

    doc = {
        "benchmark": "decode",
        "machine": machine(),
        "params": {
            "command": " ".join(["bench/decode_bench.py", *sys.argv[1:]]),
            "frames_per_video": args.frames,
            "videos_per_variant": args.videos,
            "repeats": args.repeats,
            "chunk": CHUNK,
            "out_size": list(OUT_SIZE),
            "archive": "raystack.synth train videos, seed 0, bit rate ~1 bit/pixel",
            "threads": "library defaults (PyAV thread_type AUTO, decord num_threads=0) "
            "unless the name says _1thread",
        },
        "units": "frames per second over all videos of a variant: median and best of the "
        "interleaved repeats; ratio_* are PyAV/decord ratios of those",
        "results": results,
        "open_cost": opens,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
