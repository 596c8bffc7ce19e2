"""Where in the frame: the boxes of a scored frame, drawn onto its thumbnail.

    marks = frame_marks(row, width=1920, height=1080)   # [Mark("patch", (x0, y0, x1, y1)), ...]
    draw_marks(rgb_small, marks, scale=192 / 1920)        # in place; returns the kinds drawn

A row is one scored frame's region columns (schema v2 ``box_*`` and ``patch_*``, source
pixels, x1/y1 exclusive). The worst patch of the error map is the finer, more useful box:
it is drawn in a strong colour; the worst tile, thinner. A tile box that covers the whole
frame says nothing (whole-frame scoring stores the whole frame), so it is not drawn; v1
rows and region 'frame' rows carry no box at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raystack.store.schema import BOX_COLUMNS, PATCH_COLUMNS

# RGB; magenta and cyan are rare in surveillance footage, so the boxes stand out and a test
# can find them in a screenshot.
COLOURS = {"patch": (255, 0, 255), "tile": (0, 255, 255)}
THICKNESS = {"patch": 2, "tile": 1}
LEGEND = {
    "patch": "magenta box: the worst patch of the frame (largest prediction error)",
    "tile": "cyan box: the tile that scored worst",
}
TILE, PATCH = BOX_COLUMNS, PATCH_COLUMNS
REGION_COLUMNS = (*TILE, *PATCH)  # the report's: where a frame points, without tiles


@dataclass(frozen=True)
class Mark:
    kind: str  # "patch" or "tile"
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels, x1/y1 exclusive


def _box(row: dict, names: tuple[str, ...]) -> tuple[int, int, int, int] | None:
    vals = [row.get(n) for n in names]
    if any(v is None for v in vals):
        return None
    x0, y0, x1, y1 = (int(v) for v in vals)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def frame_marks(row: dict | None, width: int | None = None,
                height: int | None = None) -> list[Mark]:
    """The boxes worth drawing for one frame's region columns: tile first, patch on top."""
    if not row:
        return []
    marks = []
    tile = _box(row, TILE)
    whole = tile is not None and width is not None and height is not None and (
        tile[0] <= 0 and tile[1] <= 0 and tile[2] >= width and tile[3] >= height)
    if tile is not None and not whole:
        marks.append(Mark("tile", tile))
    patch = _box(row, PATCH)
    if patch is not None:
        marks.append(Mark("patch", patch))
    return marks


def draw_marks(rgb: np.ndarray, marks: list[Mark], scale: float) -> set[str]:
    """Draw ``marks`` (source pixels) on ``rgb`` (H, W, 3 uint8, the frame scaled by
    ``scale``) in place; the kinds drawn. Lines lie inside the box (they cover none of
    what is around it); a box thinner than its lines still shows."""
    h, w = rgb.shape[:2]
    drawn = set()
    for m in marks:
        t = THICKNESS[m.kind]
        x0, y0 = (int(np.clip(round(v * scale), 0, n - 1)) for v, n in zip(m.box[:2], (w, h),
                                                                            strict=True))
        x1 = int(np.clip(round(m.box[2] * scale), x0 + 1, w))
        y1 = int(np.clip(round(m.box[3] * scale), y0 + 1, h))
        colour = COLOURS[m.kind]
        rgb[y0:min(y0 + t, y1), x0:x1] = colour
        rgb[max(y1 - t, y0):y1, x0:x1] = colour
        rgb[y0:y1, x0:min(x0 + t, x1)] = colour
        rgb[y0:y1, max(x1 - t, x0):x1] = colour
        drawn.add(m.kind)
    return drawn


def legend_text(kinds: set[str]) -> str:
    """One line saying what the drawn boxes mean ('' when none was drawn)."""
    parts = [LEGEND[k] for k in ("patch", "tile") if k in kinds]
    return ("Boxes on the frames: " + "; ".join(parts) + "."
            if parts else "")
