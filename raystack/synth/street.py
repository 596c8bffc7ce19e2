"""The street scene: a paved plaza before a brick building, seen by a raised fixed camera.

Close to real surveillance footage where the park scene is a cartoon:
- the background is made of real photographs (scikit-image's gravel, brick and grass)
  laid through the camera's perspective, with paving joints, lamp posts and benches;
- 5 to 15 articulated people at once, at 1.0-1.7 m/s, some in groups of two or three,
  walking across or diagonally and hiding each other;
- optics blur, sensor noise, a slow lighting drift and (in some videos) a cloud shadow
  drifting over the ground; the archive writer adds real codec artefacts.

Test videos hold one anomaly each, cycling through :data:`ANOMALY_KINDS`. ``SUBTLE``
marks the ones close to normal behaviour: a runner at 3-5x walking speed, a person who
steps into the flower bed and stands there, erratic stop-and-go motion with flailing
arms, a small ball thrown across the plaza. The gross ones: a cyclist and a car.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from raystack.synth.actors import CARS, Actor, person
from raystack.synth.camera import BED_Z, NEAR_Z, Camera, street_background

ANOMALY_KINDS = ("runner", "loiterer", "cyclist", "erratic", "thrown_object", "car")
SUBTLE = frozenset({"runner", "loiterer", "erratic", "thrown_object"})
WALK_MPS = (1.0, 1.7)  # normal walking speeds, metres per second
Z_LANES = (NEAR_Z + 0.4, BED_Z - 0.4)  # where people walk
SETTLE_S = 10.0  # seconds the crowd walks before the first frame


class Scene:
    """The static part of an archive: the camera and the rendered background."""

    def __init__(self, seed: int, width: int, height: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        self.cam = Camera.for_size(width, height)
        self.background = street_background(self.cam, rng)

    def meta(self) -> dict:
        c = self.cam
        return {"kind": "street", "focal_px": c.f, "horizon_row": c.horizon,
                "camera_height_m": c.cam_h, "person_height_px_near": 1.75 * c.scale(NEAR_Z),
                "person_height_px_far": 1.75 * c.scale(BED_Z), "crowd_settle_s": SETTLE_S}


def _walker(rng: np.random.Generator, cam: Camera, fps: float, inside: bool) -> list[Actor]:
    """A person or a small group, entering from a side (or already in view)."""
    speed = float(rng.uniform(*WALK_MPS)) / fps
    heading = float(rng.normal(0.0, 0.2)) if rng.random() < 0.75 else float(
        rng.choice([-1, 1]) * rng.uniform(0.5, 1.0))
    sign = 1 if rng.random() < 0.5 else -1
    vx, vz = sign * speed * math.cos(heading), speed * math.sin(heading)
    z = float(rng.uniform(*Z_LANES))
    lo, hi = cam.x_range(z, margin=0.5)
    x = float(rng.uniform(lo + 0.5, hi - 0.5)) if inside else (lo if sign > 0 else hi)
    group = 1 + int(rng.random() < 0.3) * int(rng.integers(1, 3))
    out = []
    for i in range(group):
        dz = 0.0 if i == 0 else float(rng.uniform(-0.6, 0.6))
        dx = -sign * 0.7 * i
        jitter = float(rng.uniform(0.97, 1.03))
        zz = float(np.clip(z + dz, *Z_LANES))
        out.append(person(rng, x + dx, zz, vx * jitter, vz * jitter))
    return out


def settled_crowd(rng: np.random.Generator, cam: Camera, fps: float,
                  settle_s: float = SETTLE_S) -> tuple[list[Actor], int]:
    """The normal crowd at the first frame, and how many people it keeps walking.

    Walkers placed in view outnumber the steady state, where part of the crowd is beyond the
    edges, entering or leaving. Unsettled, the first 20 frames held 12% more people than
    frames 40-300 (200 seeds); those are the normal frames before a test video's anomaly, so
    any activity score read a busier start as less normal.
    """
    target = int(rng.integers(5, 16))
    people: list[Actor] = []
    while len(people) < target:
        people += _walker(rng, cam, fps, inside=True)
    for _ in range(round(settle_s * fps)):
        people = walk_crowd(people, rng, cam, fps, target)
    return people, target


def walk_crowd(people: list[Actor], rng: np.random.Generator, cam: Camera, fps: float,
                target: int) -> list[Actor]:
    """One frame of the normal crowd: walk, keep to the lanes, replace who left the view."""
    for a in people:
        _keep_in_lanes(a)
        a.step()
    kept = [a for a in people if not _left_view(a, cam)]
    while len(kept) < target:
        kept += _walker(rng, cam, fps, inside=False)
    return kept


def _left_view(a: Actor, cam: Camera) -> bool:
    lo, hi = cam.x_range(a.z, margin=1.2)
    return (a.x > hi and a.vx > 0) or (a.x < lo and a.vx < 0) or not 1.0 < a.z < 40


def _keep_in_lanes(a: Actor) -> None:
    """People turn gently back to walking across when they reach the lanes' ends."""
    if (a.z < Z_LANES[0] and a.vz < 0) or (a.z > Z_LANES[1] and a.vz > 0):
        speed = math.hypot(a.vx, a.vz)
        a.vz *= 0.85
        a.vx = math.copysign(math.sqrt(max(speed**2 - a.vz**2, 0.0)), a.vx or 1.0)


def _anomaly(kind: str, rng: np.random.Generator, cam: Camera, fps: float, n: int) -> Actor:
    """The test video's anomalous actor, with its script in ``state``."""
    sign = 1 if rng.random() < 0.5 else -1
    z = float(rng.uniform(6.0, 9.5))
    lo, hi = cam.x_range(z, margin=2.5 if kind == "car" else 0.5)
    x0 = lo if sign > 0 else hi
    if kind in ("runner", "erratic", "loiterer", "thrown_object"):
        walk = float(rng.uniform(*WALK_MPS))
        speed = {"runner": walk * float(rng.uniform(3.0, 5.0))}.get(kind, walk) / fps
        if kind == "loiterer":  # walks along the bed, steps into it, stands there
            z = BED_Z - 0.5
            lo, hi = cam.x_range(z)
            stop_x = float(rng.uniform(lo + 0.3 * (hi - lo), hi - 0.3 * (hi - lo)))
            x0 = stop_x - sign * float(rng.uniform(1.0, 2.5))
        if kind == "thrown_object":  # walks in view towards the middle, throws that way
            x0 = float(rng.uniform(lo + 1.0, hi - 1.0))
            sign = 1 if x0 < 0 else -1
        a = person(rng, x0, z, sign * speed, 0.0)
        a.gait = "run" if kind == "runner" else "walk"
    elif kind == "cyclist":
        a = person(rng, x0, z, sign * float(rng.uniform(5.0, 7.0)) / fps, 0.0)
        a.kind, a.gait = "cyclist", "ride"
    elif kind == "car":
        a = Actor("car", x0, z, sign * float(rng.uniform(5.0, 8.0)) / fps, 0.0,
                  colors=(CARS[rng.integers(len(CARS))],), facing=sign)
    else:
        msg = f"unknown street anomaly kind {kind!r}; choose one of {ANOMALY_KINDS}"
        raise ValueError(msg)
    st = a.state
    st.update(kind=kind, rng=np.random.default_rng(rng.integers(2**63)), fps=fps)
    if kind == "loiterer":
        st["stop_x"] = stop_x
    if kind == "erratic":
        st["x_range"] = cam.x_range(z, margin=-0.8)
    if kind == "thrown_object":
        st["throw_at"] = int(rng.integers(6, 20))
    if kind not in ("thrown_object", "loiterer"):  # those two start out normal
        a.anomaly = kind
    return a


def _script(a: Actor, f: int, extra: list[Actor]) -> None:
    """Advance the anomalous actor's behaviour by one frame (before it moves)."""
    st, kind, fps = a.state, a.state["kind"], a.state["fps"]
    rng = st["rng"]
    if kind == "erratic" and f >= st.get("next_turn", 0):
        # Stop-and-go with sudden turns and bursts, arms flailing.
        speed = float(rng.choice([0.0, rng.uniform(0.5, 1.5), rng.uniform(2.0, 3.5)])) / fps
        ang = float(rng.uniform(0, 2 * math.pi))
        a.vx, a.vz = speed * math.cos(ang), 0.5 * speed * math.sin(ang)
        a.gait = "run" if speed * fps > 2.0 else ("stand" if speed == 0 else "walk")
        st["flail"] = float(rng.uniform(0.6, 1.2))
        st["next_turn"] = f + int(rng.integers(6, 16))
    if kind == "erratic":  # stays on the paving and in view, turning back at the edges
        a.z = float(np.clip(a.z, *Z_LANES))
        lo, hi = st["x_range"]
        if f > 0 and ((a.x < lo and a.vx < 0) or (a.x > hi and a.vx > 0)):
            a.vx = -a.vx
    if kind == "loiterer":
        if st.get("phase_") is None and (a.x - st["stop_x"]) * math.copysign(1, a.vx) >= 0:
            st["phase_"] = "enter"
            speed = 0.8 / fps
            a.vx, a.vz = 0.0, speed
        if st.get("phase_") == "enter" and a.z >= BED_Z + 0.45:
            st["phase_"] = "stand"
            a.vx = a.vz = 0.0
            a.gait = "stand"
        if st.get("phase_") == "stand":
            a.phase += 0.05  # shifting weight: the arms move a little
            st["flail"] = 0.08
        a.anomaly = "loiterer" if a.z > BED_Z else None
    if kind == "thrown_object" and f == st["throw_at"]:
        sign = a.facing
        ball = Actor("ball", a.x + sign * 0.3, a.z, sign * float(rng.uniform(5.0, 8.0)) / fps,
                     float(rng.uniform(-1.5, 1.5)) / fps, height=1.5, colors=((230, 230, 60),))
        ball.state.update(kind="ball", vup=float(rng.uniform(3.0, 5.0)) / fps, fps=fps,
                          rng=rng)
        ball.anomaly = "thrown_object"
        extra.append(ball)
    if kind == "ball":
        g = 9.81 / fps**2
        st["vup"] -= g
        a.height += st["vup"]
        if a.height <= 0.12:  # bounces, loses most of its speed, rolls to a stop
            a.height = 0.12
            st["vup"] = -0.35 * st["vup"] if abs(st["vup"]) > 2 * g else 0.0
            a.vx *= 0.6
            a.vz *= 0.6
        if math.hypot(a.vx, a.vz) * fps < 0.2 and st["vup"] == 0.0:
            a.vx = a.vz = 0.0
            a.anomaly = None


def render(scene: Scene, rng: np.random.Generator, n: int, kind: str | None, fps: float,
           labels: list[int], boxes: list[list[list[float]]]) -> Iterator[np.ndarray]:
    """Yield ``n`` RGB frames; append a 0/1 label and the anomalous boxes of each frame."""
    import cv2

    cam = scene.cam
    people, target = settled_crowd(rng, cam, fps)
    t0 = int(rng.integers(round(0.15 * n), round(0.3 * n) + 1))
    special = _anomaly(kind, rng, cam, fps, n) if kind else None
    extra: list[Actor] = []
    gain_period, gain_phi = float(rng.uniform(150, 400)), float(rng.uniform(0, 2 * math.pi))
    cloud = None
    if rng.random() < 0.5:
        from raystack.synth.park import smooth_noise

        field = smooth_noise(rng, 2 * cam.height, 3 * cam.width, (2, 4))
        cloud = (np.clip(field, 0, None) / max(1e-6, float(field.max()))).astype(np.float32)
        cloud_v = rng.uniform(0.3, 0.8) * cam.width / 320
    noise = np.random.default_rng(rng.integers(2**63))
    for f in range(n):
        actors = people + ([special] if special is not None and f >= t0 else []) + extra
        img = scene.background.astype(np.uint8)
        shade = np.zeros(img.shape[:2], np.float32)
        visible = [a for a in actors if a.visible(cam)]
        for a in visible:
            if a.kind != "ball" or a.height < 3.0:
                a.shadow(shade, cam)
        shade = cv2.GaussianBlur(shade, (0, 0), max(0.8, cam.height / 160))
        img = (img * (1.0 - 0.35 * shade[..., None])).astype(np.uint8)
        for a in sorted(visible, key=lambda a: -a.z):
            a.draw(img, cam)
        anomalous = [a for a in visible if a.anomaly]
        labels.append(int(bool(anomalous)))
        boxes.append([_clip(a.bbox(cam), cam) for a in anomalous])
        light = 1.0 + 0.06 * math.sin(2 * math.pi * f / gain_period + gain_phi)
        frame = img.astype(np.float32) * light
        if cloud is not None:
            off = int(f * cloud_v) % cloud.shape[1]
            band = np.roll(cloud, -off, axis=1)[: cam.height, : cam.width]
            frame *= (1.0 - 0.18 * band)[..., None]
        frame = cv2.GaussianBlur(frame, (0, 0), 0.6)
        frame += noise.normal(0.0, 2.5, frame.shape).astype(np.float32)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        if special is not None and f >= t0:
            _script(special, f - t0, extra)
        for b in extra:
            _script(b, f - t0, extra)
        for a in actors[len(people):]:  # the anomalous actor and what it threw
            a.step()
        people = walk_crowd(people, rng, cam, fps, target)


def _clip(box: tuple[float, float, float, float], cam: Camera) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(max(0.0, x0), 1), round(max(0.0, y0), 1), round(min(cam.width, x1), 1),
            round(min(cam.height, y1), 1)]
