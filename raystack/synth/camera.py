"""A fixed, raised camera over a flat ground plane, and the street scene's background.

World coordinates are metres: X to the right, Z away from the camera along the ground,
heights up from the ground. The camera looks horizontally with its horizon above the
image, so a point on the ground at depth Z lands on image row ``horizon + f * cam_h / Z``
and one metre there spans ``f / Z`` pixels: people shrink with distance as they do on a
surveillance camera, and every texture is laid through the same projection.

The textures are real photographs (gravel, brick, grass) that ship inside scikit-image's
wheel; they are read from its package data, never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Depth of the building's facade and of the flower bed in front of it, in metres. People
# walk on the paving between NEAR_Z and BED_Z; nobody normally stands in the bed.
WALL_Z = 12.0
BED_Z = 10.6
NEAR_Z = 4.9


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    f: float  # focal length, px
    horizon: float  # image row of the horizon (negative: above the image)
    cam_h: float = 5.5  # metres above the ground

    @classmethod
    def for_size(cls, width: int, height: int) -> Camera:
        # f = H with the horizon 0.15 H above the frame puts the facade at ~0.3 H and makes
        # a 1.75 m person ~0.36 H tall at the bottom edge and ~0.15 H at the facade.
        return cls(width, height, f=float(height), horizon=-0.15 * height)

    def project(self, x: float, z: float, up: float = 0.0) -> tuple[float, float]:
        """Image (column, row) of the world point (x, up, z)."""
        return self.width / 2 + self.f * x / z, self.horizon + self.f * (self.cam_h - up) / z

    def scale(self, z: float) -> float:
        """Pixels per metre at depth ``z``."""
        return self.f / z

    def depth_of_row(self, row: np.ndarray | float) -> np.ndarray | float:
        return self.f * self.cam_h / (np.asarray(row, np.float64) - self.horizon)

    def x_range(self, z: float, margin: float = 0.0) -> tuple[float, float]:
        """World X of the left and right image edges at depth ``z``, widened by ``margin`` m."""
        half = self.width / 2 * z / self.f
        return -half - margin, half + margin


@lru_cache(maxsize=4)
def photo(name: str) -> np.ndarray:
    """A grayscale photograph from scikit-image's bundled data, float32 in [0, 1]."""
    from importlib.resources import files

    import cv2

    path = files("skimage") / "data" / f"{name}.png"
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        msg = f"the street scene needs {path} from scikit-image's package data"
        raise FileNotFoundError(msg)
    return img.astype(np.float32) / 255.0


def _tint(gray: np.ndarray, color: tuple[float, float, float], contrast: float) -> np.ndarray:
    g = (gray - float(gray.mean())) * contrast
    return np.clip(np.asarray(color, np.float32) * (1.0 + g[..., None]), 0, 255)


def _ground(cam: Camera, rng: np.random.Generator, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """The ground plane rendered at ``ss`` x supersampling: (RGB image, depth per pixel)."""
    import cv2

    w, h = cam.width * ss, cam.height * ss
    rows = (np.arange(h, dtype=np.float64) + 0.5) / ss
    cols = (np.arange(w, dtype=np.float64) + 0.5) / ss
    z = np.maximum(cam.depth_of_row(rows), 1e-3)[:, None] * np.ones((1, w))
    x = (cols[None, :] - cam.width / 2) * z / cam.f
    metres_per_tile = 3.0  # the 512 px photograph covers 3 m of ground
    offset = rng.uniform(0, 512, 2)
    u = ((x / metres_per_tile * 512 + offset[0]) % 512).astype(np.float32)
    v = ((z / metres_per_tile * 512 + offset[1]) % 512).astype(np.float32)
    gravel = cv2.remap(photo("gravel"), u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    grass = cv2.remap(photo("grass"), u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    paving = _tint(gravel, (150, 145, 136), 0.55)
    slab = 1.2  # metres; joints between slabs are darker, a strong perspective cue
    joint = 0.035
    joints = ((x / slab) % 1.0 < joint / slab) | ((z / slab) % 1.0 < joint / slab)
    paving = paving * np.where(joints, 0.78, 1.0)[..., None]
    bed = _tint(grass, (70, 96, 52), 0.8)
    in_bed = z >= BED_Z
    kerb = np.abs(z - BED_Z) < 0.08
    img = np.where(in_bed[..., None], bed, paving)
    img = np.where(kerb[..., None], np.float32(185), img)
    return img.astype(np.float32), z


def _facade(cam: Camera, rng: np.random.Generator, ss: int) -> np.ndarray:
    """The building front at WALL_Z: brick photograph, windows and a door."""
    import cv2

    w, h = cam.width * ss, cam.height * ss
    s = cam.scale(WALL_Z) * ss  # px per metre on the facade
    brick = cv2.resize(photo("brick"), (max(8, round(2.5 * s)), max(8, round(2.5 * s))),
                       interpolation=cv2.INTER_AREA)
    reps = (h // brick.shape[0] + 2, w // brick.shape[1] + 2)
    wall = _tint(np.tile(brick, reps)[:h, :w], tuple(rng.uniform([150, 80, 60], [180, 105, 80])),
                 0.9)
    ground_row = cam.project(0.0, WALL_Z)[1] * ss
    for xm in np.arange(-10.0, 10.0, 2.6) + rng.uniform(0, 2.6):
        for bottom_m in (1.3, 4.3, 7.3):  # window sills, metres above the ground
            x0 = w / 2 + xm * s
            y1 = ground_row - bottom_m * s
            cv2.rectangle(wall, (round(x0), round(y1 - 1.5 * s)), (round(x0 + 1.1 * s), round(y1)),
                          (55, 62, 70), -1)
            cv2.rectangle(wall, (round(x0), round(y1 - 1.5 * s)), (round(x0 + 1.1 * s), round(y1)),
                          (205, 200, 190), max(1, ss))
    dx = w / 2 + float(rng.uniform(-3.0, 2.0)) * s
    cv2.rectangle(wall, (round(dx), round(ground_row - 2.3 * s)), (round(dx + 1.4 * s),
                  round(ground_row)), (70, 48, 36), -1)
    return wall


def street_background(cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """The static scene: facade, flower bed, paving with slabs, lamp posts and benches."""
    import cv2

    ss = 2  # render twice as large and average down: no aliasing of the far texture
    ground, z = _ground(cam, rng, ss)
    img = np.where((z >= WALL_Z)[..., None], _facade(cam, rng, ss), ground)
    img = np.ascontiguousarray(img)
    # Lamp posts along the bed's kerb and benches on the paving, drawn in perspective.
    for x in np.sort(rng.uniform(*cam.x_range(BED_Z, -0.5), int(rng.integers(2, 4)))):
        (bx, by), (tx, ty) = cam.project(x, BED_Z), cam.project(x, BED_Z, 4.0)
        width = max(1, round(0.12 * cam.scale(BED_Z) * ss))
        cv2.line(img, (round(bx * ss), round(by * ss)), (round(tx * ss), round(ty * ss)),
                 (45, 45, 50), width)
        cv2.circle(img, (round(tx * ss), round(ty * ss)), 2 * width, (235, 225, 180), -1)
    for _ in range(int(rng.integers(1, 3))):
        bz = float(rng.uniform(6.0, 9.5))
        bxm = float(rng.uniform(*cam.x_range(bz, -1.5)))
        p = [cam.project(bxm + dx, bz, up) for dx, up in ((0, 0.45), (1.6, 0.45), (1.6, 0.9),
                                                           (0, 0.9))]
        pts = np.round(np.array(p) * ss).astype(np.int32)
        cv2.fillConvexPoly(img, pts, (105, 72, 45))
        for dx in (0.1, 1.5):
            (lx, ly), (ux, uy) = cam.project(bxm + dx, bz), cam.project(bxm + dx, bz, 0.45)
            cv2.line(img, (round(lx * ss), round(ly * ss)), (round(ux * ss), round(uy * ss)),
                     (40, 40, 40), max(1, ss))
    # Vignetting, as every real lens has.
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    img = img * (1.0 - 0.12 * r2)[..., None]
    small = cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0, 255).astype(np.float32)
