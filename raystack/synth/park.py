"""The park scene: a cartoon path through grass that walkers cross left to right.

Cheap to render and with gross anomalies, so tests and the demo stay fast; the
street scene (:mod:`raystack.synth.street`) is the realistic one. Test videos add one
anomaly each, cycling through :data:`ANOMALY_KINDS`: a cyclist several times faster
than the walkers, a walker against the flow, a walker crossing the grass where nobody
goes, and an object that appears out of nowhere and shakes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

ANOMALY_KINDS = ("fast", "against_flow", "forbidden_region", "sudden_appearance")

def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, ...]) -> np.ndarray:
    """Sum of upsampled random grids: cloud-like texture in about [-1, 1]."""
    import cv2

    acc = np.zeros((h, w), np.float32)
    for i, c in enumerate(cells):
        grid = rng.standard_normal((c + 1, c + 1)).astype(np.float32)
        acc += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) / (i + 1)
    return acc / max(1e-6, float(np.abs(acc).max()))


@dataclass
class _Scene:
    """The static part shared by every video of an archive (a fixed camera)."""

    width: int
    height: int
    background: np.ndarray  # uint8 (H, W, 3)
    top: tuple[float, float]  # path's upper edge: y = a + b * x
    bottom: tuple[float, float]  # path's lower edge
    walker_h: float  # height of a walker at the middle of the path, in pixels
    speed: float  # typical walking speed, pixels per frame

    def top_y(self, x: float) -> float:
        return self.top[0] + self.top[1] * x

    def bottom_y(self, x: float) -> float:
        return self.bottom[0] + self.bottom[1] * x

    def scale(self, y: float) -> float:
        """Perspective: things nearer the camera (lower in the image) look bigger."""
        return 0.75 + 0.5 * y / self.height


def _make_scene(rng: np.random.Generator, width: int, height: int) -> _Scene:
    import cv2

    w, h = width, height
    slope = float(rng.uniform(-0.06, 0.06)) * h / w
    top = (h * float(rng.uniform(0.36, 0.42)) - slope * w / 2, slope)
    bottom = (h * float(rng.uniform(0.72, 0.78)) - slope * w / 2, slope)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    on_path = (yy >= top[0] + top[1] * xx) & (yy <= bottom[0] + bottom[1] * xx)

    cloud = smooth_noise(rng, h, w, (3, 6, 12))
    grain = rng.standard_normal((h, w)).astype(np.float32)
    grass = (
        np.stack([72 + 16 * cloud, 110 + 22 * cloud, 58 + 12 * cloud], -1) + 6 * grain[..., None]
    )
    paving = (
        np.stack([158 + 9 * cloud, 148 + 9 * cloud, 132 + 8 * cloud], -1) + 4 * grain[..., None]
    )
    tile = max(4, w // 14)
    # Joints between paving slabs: vertical, and horizontal relative to the slanted edge.
    joints = ((xx % tile) < 1) | (((yy - top[1] * xx) % tile) < 1)
    paving = paving - 22 * joints[..., None]
    bg = np.where(on_path[..., None], paving, grass)
    img = np.clip(bg, 0, 255).astype(np.uint8)

    thick = max(1, round(h / 128))
    for a, b in (top, bottom):
        cv2.line(
            img, (0, round(a)), (w - 1, round(a + b * (w - 1))), (96, 92, 88), thick, cv2.LINE_AA
        )
    # Bushes above and below the path, a bench below it, a lamp post on its upper edge.
    for _ in range(int(rng.integers(2, 5))):
        above = bool(rng.integers(0, 2))
        x = float(rng.uniform(0.05, 0.95) * w)
        y = float(rng.uniform(0.05, 0.28) * h) if above else float(rng.uniform(0.84, 0.97) * h)
        r = max(2, round(float(rng.uniform(0.04, 0.07)) * h))
        cv2.circle(img, (round(x), round(y)), r, (38, 70, 34), -1, cv2.LINE_AA)
        cv2.circle(
            img, (round(x - r / 3), round(y - r / 3)), max(1, r // 2), (52, 92, 44), -1, cv2.LINE_AA
        )
    bx, by = float(rng.uniform(0.2, 0.8) * w), bottom[0] + bottom[1] * w / 2 + 0.08 * h
    bw, bh = 0.12 * w, 0.025 * h
    cv2.rectangle(img, (round(bx), round(by)), (round(bx + bw), round(by + bh)), (110, 74, 40), -1)
    lx = float(rng.uniform(0.1, 0.9) * w)
    ly = top[0] + top[1] * lx
    cv2.line(
        img, (round(lx), round(ly)), (round(lx), round(ly - 0.22 * h)), (50, 50, 56), thick + 1
    )
    cv2.circle(
        img, (round(lx), round(ly - 0.22 * h)), max(2, round(0.015 * h)), (230, 220, 170), -1
    )
    return _Scene(w, h, img, top, bottom, walker_h=0.11 * h, speed=w / 160.0)


def scene_for(seed: int, width: int, height: int) -> _Scene:
    return _make_scene(
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))), width, height
    )


def background(seed: int = 0, size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """The static scene (no walkers, noise or lighting drift) of the archive that
    :func:`synthesize` writes with this ``seed`` and ``size``: uint8 (H, W, 3) RGB."""
    return scene_for(seed, int(size[0]), int(size[1])).background.copy()


# --- moving things --------------------------------------------------------------------


@dataclass
class _Agent:
    kind: str  # "walker", "bike" or "box"
    x: float
    y: float  # feet (ground contact) position
    vx: float
    vy: float
    size: float  # height at scale 1
    colors: tuple[tuple[int, int, int], ...]
    phase: float = 0.0
    anomaly: str | None = None  # the anomaly kind while the agent is anomalous
    state: dict = field(default_factory=dict)

    def bbox(self, scene: _Scene) -> tuple[float, float, float, float]:
        h = self.size * scene.scale(self.y)
        half = {"walker": 0.35, "bike": 0.7, "box": 0.35}[self.kind] * h
        top = {"walker": 1.0, "bike": 1.15, "box": 0.5}[self.kind] * h
        return self.x - half, self.y - top, self.x + half, self.y

    def visible(self, scene: _Scene) -> bool:
        x0, y0, x1, y1 = self.bbox(scene)
        return x1 > 0 and x0 < scene.width and y1 > 0 and y0 < scene.height


_SHIRTS = (
    (200, 40, 40),
    (40, 70, 190),
    (230, 200, 60),
    (240, 240, 240),
    (30, 30, 30),
    (150, 60, 170),
    (40, 150, 90),
    (240, 130, 30),
)
_PANTS = ((40, 40, 60), (70, 60, 50), (30, 30, 30), (90, 90, 110))
_SKIN = ((230, 190, 160), (190, 140, 100), (130, 90, 60))


def _walker(rng: np.random.Generator, scene: _Scene, x: float) -> _Agent:
    frac = float(rng.uniform(0.3, 0.95))
    y = scene.top_y(x) + frac * (scene.bottom_y(x) - scene.top_y(x))
    colors = (
        _SHIRTS[rng.integers(len(_SHIRTS))],
        _PANTS[rng.integers(len(_PANTS))],
        _SKIN[rng.integers(len(_SKIN))],
    )
    size = scene.walker_h * float(rng.uniform(0.85, 1.1))
    speed = scene.speed * float(rng.uniform(0.85, 1.2))
    return _Agent(
        "walker",
        x,
        y,
        speed,
        0.0,
        size,
        colors,
        float(rng.uniform(0, 2 * math.pi)),
        state={"lane": frac},
    )


def _pt(x: float, y: float) -> tuple[int, int]:
    # Fixed-point coordinates (shift=4) so slow motion moves by sub-pixel steps.
    return (round(x * 16), round(y * 16))


def _draw(img: np.ndarray, a: _Agent, scene: _Scene) -> None:
    import cv2

    aa, sh = cv2.LINE_AA, 4
    h = a.size * scene.scale(a.y)
    t = max(1, round(0.09 * h))
    x, y = a.x, a.y
    if a.kind == "box":
        c = a.colors[0]
        p0, p1 = _pt(x - 0.35 * h, y - 0.5 * h), _pt(x + 0.35 * h, y)
        cv2.rectangle(img, p0, p1, c, -1, aa, sh)
        cv2.rectangle(img, p0, p1, (40, 30, 20), t, aa, sh)
        cv2.line(img, p0, p1, (40, 30, 20), t, aa, sh)
        return
    swing = 0.45 * math.sin(a.phase)
    bob = 0.03 * h * abs(math.sin(a.phase))
    shirt, pants, skin = a.colors[:3]
    if a.kind == "bike":
        r = 0.24 * h
        for wx in (x - 0.42 * h, x + 0.42 * h):
            cv2.circle(img, _pt(wx, y - r), round(r * 16), (25, 25, 25), t, aa, sh)
        cv2.line(img, _pt(x - 0.42 * h, y - r), _pt(x, y - 0.55 * h), (180, 30, 30), t, aa, sh)
        cv2.line(img, _pt(x, y - 0.55 * h), _pt(x + 0.42 * h, y - r), (180, 30, 30), t, aa, sh)
        hip_y, lean = y - 0.6 * h, 0.15 * h
    else:
        hip_y, lean = y - 0.48 * h - bob, 0.0
        for s in (swing, -swing):
            cv2.line(
                img, _pt(x, hip_y), _pt(x + 0.5 * h * math.sin(s), y - bob), pants, t + 1, aa, sh
            )
    cx, cy = x + lean, hip_y - 0.2 * h
    cv2.ellipse(img, _pt(cx, cy), _pt(0.13 * h, 0.22 * h), 0, 0, 360, shirt, -1, aa, sh)
    for s in (swing, -swing):
        hand = (cx + 0.3 * h * math.sin(-s), cy + 0.12 * h)
        cv2.line(img, _pt(cx, cy - 0.14 * h), _pt(*hand), shirt, t, aa, sh)
    cv2.circle(img, _pt(cx + lean * 0.3, cy - 0.33 * h), round(0.09 * h * 16), skin, -1, aa, sh)


def _step(a: _Agent, scene: _Scene, f: int) -> None:
    """Advance one agent by one frame, including its scripted anomaly."""
    st = a.state
    if a.kind == "box":
        # Shakes in place: unpredictable jitter of a few pixels.
        jitter = st["rng"].uniform(-0.05, 0.05, 2) * a.size
        a.x, a.y = st["x0"] + jitter[0], st["y0"] + jitter[1]
        return
    if a.anomaly == "against_flow" and f >= st["turn_at"]:
        a.vx, a.anomaly = abs(a.vx), None
    if a.anomaly == "forbidden_region" and a.y >= scene.top_y(a.x) + st["lane"] * (
        scene.bottom_y(a.x) - scene.top_y(a.x)
    ):
        a.vx, a.vy, a.anomaly = math.hypot(a.vx, a.vy), 0.0, None
        st["lane"] = (a.y - scene.top_y(a.x)) / (scene.bottom_y(a.x) - scene.top_y(a.x))
    a.x += a.vx
    a.y += a.vy
    if a.vy == 0.0 and "lane" in st:
        base = scene.top_y(a.x) + st["lane"] * (scene.bottom_y(a.x) - scene.top_y(a.x))
        a.y = base + 0.015 * scene.height * math.sin(
            a.x / scene.width * 2 * math.pi + st.get("psi", 0)
        )
    stride = 0.9 * a.size * scene.scale(a.y)
    a.phase += math.hypot(a.vx, a.vy) * 2 * math.pi / stride


def _anomaly_agent(kind: str, rng: np.random.Generator, scene: _Scene, t0: int, dur: int) -> _Agent:
    w = scene.width
    if kind == "fast":
        a = _walker(rng, scene, 0.0)
        a.kind, a.size = "bike", scene.walker_h * 1.05
        a.x = -0.7 * a.size * scene.scale(a.y)
        a.vx = max((w + 1.4 * a.size) / dur, 4.5 * scene.speed)
    elif kind == "against_flow":
        a = _walker(rng, scene, w + 0.3 * scene.walker_h)
        a.vx = -a.vx
        a.state["turn_at"] = t0 + dur
    elif kind == "forbidden_region":
        a = _walker(rng, scene, float(rng.uniform(0.25, 0.6)) * w)
        a.y, a.state["lane"] = -0.01 * scene.height, 0.3  # joins the path at its upper side
        a.vx, a.vy = 0.45 * a.vx, 0.9 * a.vx
    elif kind == "sudden_appearance":
        x = float(rng.uniform(0.3, 0.7)) * w
        y = scene.top_y(x) + float(rng.uniform(0.5, 0.9)) * (scene.bottom_y(x) - scene.top_y(x))
        a = _Agent(
            "box",
            x,
            y,
            0.0,
            0.0,
            scene.walker_h * 1.2,
            ((235, 125, 30),),
            state={"x0": x, "y0": y, "rng": rng, "until": t0 + dur},
        )
    else:
        msg = f"unknown anomaly kind {kind!r}; choose one of {ANOMALY_KINDS}"
        raise ValueError(msg)
    a.anomaly = kind
    return a


def render(
    scene: _Scene,
    rng: np.random.Generator,
    n: int,
    kind: str | None,
    labels: list[int],
    boxes: list[list[list[float]]],
) -> Iterator[np.ndarray]:
    """Yield ``n`` RGB frames; append a 0/1 label and the anomalous boxes of each frame."""
    count = int(rng.integers(3, 7))
    walkers = [
        _walker(rng, scene, float(x)) for x in np.sort(rng.uniform(-0.05, 1.0, count)) * scene.width
    ]
    for wk in walkers:
        wk.state["psi"] = float(rng.uniform(0, 2 * math.pi))
    period, phi = float(rng.uniform(200, 400)), float(rng.uniform(0, 2 * math.pi))
    dur = int(np.clip(round(0.25 * n), 6, 60))
    t0 = int(rng.integers(round(0.25 * n), round(0.4 * n) + 1))
    special = _anomaly_agent(kind, rng, scene, t0, dur) if kind else None
    noise_rng = np.random.default_rng(rng.integers(2**63))
    for f in range(n):
        agents = list(walkers)
        if (
            special is not None
            and f >= t0
            and not (special.kind == "box" and f >= special.state["until"])
        ):
            agents.append(special)
        img = scene.background.copy()
        for a in sorted(agents, key=lambda a: a.y):
            if a.visible(scene):
                _draw(img, a, scene)
        anomalous = [a for a in agents if a.anomaly and a.visible(scene)]
        labels.append(int(bool(anomalous)))
        boxes.append([_clip(a.bbox(scene), scene) for a in anomalous])
        gain = 1.0 + 0.05 * math.sin(2 * math.pi * f / period + phi)
        noisy = img.astype(np.float32) * gain + noise_rng.normal(0.0, 2.0, img.shape).astype(
            np.float32
        )
        yield np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
        for a in agents:
            _step(a, scene, f + 1)
        for i, wk in enumerate(walkers):
            if wk.bbox(scene)[0] > scene.width:  # left the scene: a new walker enters
                walkers[i] = _walker(rng, scene, -float(rng.uniform(0.02, 0.3)) * scene.width)
                walkers[i].state["psi"] = float(rng.uniform(0, 2 * math.pi))



def _clip(box: tuple[float, float, float, float], scene: _Scene) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(max(0.0, x0), 1), round(max(0.0, y0), 1), round(min(scene.width, x1), 1),
            round(min(scene.height, y1), 1)]
