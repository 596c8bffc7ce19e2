"""What moves in the street scene: articulated people, cyclists, a car and a thrown ball.

Each actor lives on the ground plane in metres (see :mod:`raystack.synth.camera`) and is
drawn through the camera, so size and speed in pixels follow its depth. People have hips,
knees, shoulders and elbows that swing with their stride (a run swings wider, bends the
knees more and leans forward); seen from the side the limbs swing in the image, seen from
the front they mostly do not, as on a real camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from raystack.synth.camera import Camera

SHIRTS = ((190, 40, 40), (40, 70, 170), (225, 195, 70), (225, 225, 225), (35, 35, 38),
          (130, 60, 150), (45, 130, 85), (225, 125, 40), (110, 110, 120), (160, 120, 80))
TROUSERS = ((35, 38, 60), (70, 60, 50), (30, 30, 32), (85, 88, 105), (120, 110, 90))
SKIN = ((225, 185, 155), (190, 140, 105), (125, 88, 60))
HAIR = ((30, 25, 20), (90, 60, 35), (160, 130, 80), (120, 120, 120))
CARS = ((170, 30, 30), (30, 60, 140), (210, 210, 210), (40, 40, 45), (200, 170, 40))
STRIDE_M = {"walk": 1.45, "run": 2.8, "stand": 1.0}  # metres per gait cycle


@dataclass
class Actor:
    kind: str  # "person", "cyclist", "car" or "ball"
    x: float  # metres; ground position (the feet, the wheels' contact)
    z: float
    vx: float = 0.0  # metres per frame
    vz: float = 0.0
    height: float = 1.75  # metres; for the ball, its height above the ground
    colors: tuple = ()
    gait: str = "walk"
    phase: float = 0.0
    anomaly: str | None = None  # set while the actor is anomalous
    state: dict = field(default_factory=dict)
    facing: int = 1  # +1 looks right in the image, -1 left
    profile: float = 1.0  # 1 = seen from the side, 0 = from the front or back

    def step(self) -> None:
        speed = math.hypot(self.vx, self.vz)
        if speed > 1e-6:
            if abs(self.vx) > 0.2 * speed:
                self.facing = 1 if self.vx > 0 else -1
            self.profile = max(0.2, abs(self.vx) / speed)
        self.x += self.vx
        self.z += self.vz
        self.phase += speed * 2 * math.pi / STRIDE_M.get(self.gait, 1.45)

    def bbox(self, cam: Camera) -> tuple[float, float, float, float]:
        """Image box (x0, y0, x1, y1) around the actor, before clipping to the frame."""
        s = cam.scale(self.z)
        fx, fy = cam.project(self.x, self.z)
        if self.kind == "ball":
            cx, cy = cam.project(self.x, self.z, self.height)
            r = 0.12 * s + 1
            return cx - r, cy - r, cx + r, cy + r
        half, top = {"person": (0.3, 1.0), "cyclist": (0.95, 1.0), "car": (2.05, 1.5)}[self.kind]
        top_m = top * (self.height if self.kind != "car" else 1.0)
        return fx - half * s, fy - top_m * s, fx + half * s, fy + 0.02 * s

    def visible(self, cam: Camera) -> bool:
        x0, y0, x1, y1 = self.bbox(cam)
        return x1 > 0 and x0 < cam.width and y1 > 0 and y0 < cam.height

    def draw(self, img: np.ndarray, cam: Camera) -> None:
        {"person": _draw_person, "cyclist": _draw_cyclist, "car": _draw_car,
         "ball": _draw_ball}[self.kind](img, cam, self)

    def shadow(self, mask: np.ndarray, cam: Camera) -> None:
        """Add this actor's ground shadow (cast down and to the right) into ``mask``."""
        import cv2

        s = cam.scale(self.z)
        length = {"person": 0.35, "cyclist": 0.9, "car": 2.2, "ball": 0.12}[self.kind]
        cx, cy = cam.project(self.x + 0.25, self.z - 0.15)
        axes = (max(1, round(length * s * 16)), max(1, round(0.14 * length * s * 16 + 8)))
        cv2.ellipse(mask, _p(cx, cy), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA, 4)


def person(rng: np.random.Generator, x: float, z: float, vx: float, vz: float) -> Actor:
    colors = (SHIRTS[rng.integers(len(SHIRTS))], TROUSERS[rng.integers(len(TROUSERS))],
              SKIN[rng.integers(len(SKIN))], HAIR[rng.integers(len(HAIR))])
    a = Actor("person", x, z, vx, vz, float(rng.uniform(1.6, 1.9)), colors,
              phase=float(rng.uniform(0, 2 * math.pi)))
    a.state["bag"] = bool(rng.random() < 0.3)
    speed = math.hypot(vx, vz)
    if speed > 0:
        a.facing = 1 if vx >= 0 else -1
        a.profile = max(0.2, abs(vx) / speed)
    return a


def _p(x: float, y: float) -> tuple[int, int]:
    # Fixed-point coordinates (shift 4): slow or distant people move by sub-pixel steps.
    return round(x * 16), round(y * 16)


def _line(img, a, b, color, thick) -> None:
    import cv2

    cv2.line(img, _p(*a), _p(*b), color, max(1, round(thick)), cv2.LINE_AA, 4)


def _shade(color, k: float) -> tuple[int, int, int]:
    return tuple(int(c * k) for c in color)


def _limb(root, length1, length2, angle, bend, facing) -> tuple[tuple, tuple]:
    """Two-segment limb hanging from ``root``: angles in radians from straight down."""
    mid = (root[0] + facing * length1 * math.sin(angle), root[1] + length1 * math.cos(angle))
    end = (mid[0] + facing * length2 * math.sin(angle - bend),
           mid[1] + length2 * math.cos(angle - bend))
    return mid, end


def _draw_person(img: np.ndarray, cam: Camera, a: Actor, seated: bool = False) -> None:
    import cv2

    s = cam.scale(a.z)
    h = a.height * s
    fx, fy = cam.project(a.x, a.z)
    shirt, trousers, skin, hair = a.colors
    c, d = a.profile, a.facing
    run = a.gait == "run"
    amp = {"walk": 0.45, "run": 0.95, "stand": 0.0}.get(a.gait, 0.45) * c
    bob = (0.035 if run else 0.018) * h * abs(math.sin(a.phase))
    lean = d * (0.09 if run else 0.015) * h
    hip = (fx, fy - 0.53 * h - bob) if not seated else (fx - d * 0.12 * h, fy - 0.62 * h)
    shoulder = (hip[0] + lean, hip[1] - 0.29 * h)
    apart = 0.045 * h * (1 - c)  # seen from the front, legs and arms stand apart
    w_sh, w_hip = (0.055 * c + 0.11 * (1 - c)) * h, (0.045 * c + 0.085 * (1 - c)) * h
    flail = a.state.get("flail", 0.0)
    limbs = []
    for side in (-1, 1):  # -1: far side (drawn first, darker), +1: near side
        ph = a.phase + (0 if side > 0 else math.pi)
        if seated:  # pedalling: the feet go round the crank
            foot = (fx + d * 0.16 * h * math.cos(ph), fy - 0.2 * h + 0.16 * h * math.sin(ph))
            knee = ((hip[0] + foot[0]) / 2 + d * 0.14 * h, (hip[1] + foot[1]) / 2 - 0.08 * h)
        else:
            swing = amp * math.sin(ph)
            bend = (1.3 if run else 0.6) * amp * max(0.0, math.sin(ph + math.pi / 2))
            knee, foot = _limb((hip[0] + side * apart, hip[1]), 0.25 * h, 0.26 * h, swing,
                               bend, d)
        arm_swing = -0.8 * amp * math.sin(ph) + flail * math.sin(3.1 * a.phase + side)
        elbow, hand = _limb((shoulder[0] + side * (w_sh - 0.02 * h) * (1 - c), shoulder[1]),
                            0.17 * h, 0.16 * h, arm_swing, -(1.4 if run or seated else 0.25), d)
        limbs.append(((hip[0] + side * apart, hip[1]), knee, foot, elbow, hand))
    _draw_limbs(img, limbs[0], shoulder, (trousers, shirt, skin), 0.75, d * 0.07 * h * c, h)
    if a.state.get("bag"):
        bx = shoulder[0] - d * (0.07 * h)
        cv2.rectangle(img, _p(bx - 0.05 * h, shoulder[1] + 0.03 * h),
                      _p(bx + 0.05 * h, shoulder[1] + 0.2 * h), (60, 55, 50), -1, cv2.LINE_AA, 4)
    torso = np.array([_p(shoulder[0] - w_sh, shoulder[1]), _p(shoulder[0] + w_sh, shoulder[1]),
                      _p(hip[0] + w_hip, hip[1] + 0.02 * h), _p(hip[0] - w_hip, hip[1] + 0.02 * h)],
                     np.int32)
    cv2.fillConvexPoly(img, torso, shirt, cv2.LINE_AA, 4)
    _draw_limbs(img, limbs[1], shoulder, (trousers, shirt, skin), 1.0, d * 0.07 * h * c, h)
    head = (shoulder[0] + 0.3 * lean, shoulder[1] - 0.09 * h)
    r = 0.062 * h
    cv2.circle(img, _p(*head), max(1, round(r * 16)), skin, -1, cv2.LINE_AA, 4)
    cv2.ellipse(img, _p(head[0] - d * 0.2 * r * c, head[1] - 0.35 * r),
                (max(1, round(r * 16)), max(1, round(0.7 * r * 16))), 0, 180, 360, hair, -1,
                cv2.LINE_AA, 4)


def _draw_limbs(img, limb, shoulder, colors, k: float, toe: float, h: float) -> None:
    """One leg and one arm; the far side (``k`` < 1) is drawn darker, before the torso."""
    root, knee, foot, elbow, hand = limb
    trousers, shirt, skin = (_shade(c, k) for c in colors)
    leg_t, arm_t = 0.085 * h, 0.058 * h
    _line(img, root, knee, trousers, leg_t)
    _line(img, knee, foot, trousers, leg_t * 0.9)
    _line(img, foot, (foot[0] + toe, foot[1]), (25, 25, 25), leg_t * 0.7)
    _line(img, (shoulder[0], shoulder[1] + 0.02 * h), elbow, shirt, arm_t)
    _line(img, elbow, hand, skin, arm_t * 0.85)


def _draw_cyclist(img: np.ndarray, cam: Camera, a: Actor) -> None:
    import cv2

    s = cam.scale(a.z)
    fx, fy = cam.project(a.x, a.z)
    r = 0.34 * s
    t = max(1.0, 0.04 * s)
    wheels = [(fx + dx * s, fy - r) for dx in (-0.55, 0.55)]
    for cx, cy in wheels:
        cv2.circle(img, _p(cx, cy), max(1, round(r * 16)), (25, 25, 25), max(1, round(t)),
                   cv2.LINE_AA, 4)
        ang = a.phase * 1.6
        _line(img, (cx - r * math.cos(ang), cy - r * math.sin(ang)),
              (cx + r * math.cos(ang), cy + r * math.sin(ang)), (150, 150, 150), t * 0.5)
    crank = (fx, fy - 0.2 * a.height * s)
    seat = (fx - a.facing * 0.18 * s, fy - 0.62 * a.height * s)
    bar = (fx + a.facing * 0.45 * s, fy - 0.65 * a.height * s)
    frame = a.state.setdefault("frame", (30, 30, 160))
    for p, q in ((wheels[0], crank), (crank, seat), (seat, wheels[0]), (crank, bar),
                 (bar, wheels[1]), (seat, bar)):
        _line(img, p, q, frame, t)
    _draw_person(img, cam, a, seated=True)


def _draw_car(img: np.ndarray, cam: Camera, a: Actor) -> None:
    import cv2

    s = cam.scale(a.z)
    fx, fy = cam.project(a.x, a.z)
    body = a.colors[0]

    def box(x0, y0, x1, y1, color) -> None:
        cv2.rectangle(img, _p(fx + x0 * s, fy - y1 * s), _p(fx + x1 * s, fy - y0 * s), color,
                      -1, cv2.LINE_AA, 4)

    box(-2.0, 0.25, 2.0, 0.95, body)
    cabin = np.array([_p(fx - 1.2 * s, fy - 0.95 * s), _p(fx - 0.8 * s, fy - 1.45 * s),
                      _p(fx + 0.7 * s, fy - 1.45 * s), _p(fx + 1.15 * s, fy - 0.95 * s)], np.int32)
    cv2.fillConvexPoly(img, cabin, body, cv2.LINE_AA, 4)
    box(-0.95, 1.0, -0.1, 1.38, (60, 75, 90))
    box(0.0, 1.0, 0.75, 1.38, (60, 75, 90))
    box(-2.0, 0.55, -1.9, 0.7, (230, 60, 40) if a.facing > 0 else (240, 240, 200))
    box(1.9, 0.55, 2.0, 0.7, (240, 240, 200) if a.facing > 0 else (230, 60, 40))
    for dx in (-1.3, 1.3):
        cv2.circle(img, _p(fx + dx * s, fy - 0.32 * s), max(1, round(0.32 * s * 16)),
                   (20, 20, 20), -1, cv2.LINE_AA, 4)
        ang = a.phase * 2.0
        hub = (fx + dx * s, fy - 0.32 * s)
        _line(img, hub, (hub[0] + 0.2 * s * math.cos(ang), hub[1] + 0.2 * s * math.sin(ang)),
              (150, 150, 150), max(1.0, 0.05 * s))


def _draw_ball(img: np.ndarray, cam: Camera, a: Actor) -> None:
    import cv2

    cx, cy = cam.project(a.x, a.z, a.height)
    r = max(1.0, 0.12 * cam.scale(a.z))
    cv2.circle(img, _p(cx, cy), round(r * 16), a.colors[0], -1, cv2.LINE_AA, 4)
