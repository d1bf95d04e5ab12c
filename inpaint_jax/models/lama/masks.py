"""Training masks of a student study of LaMa: a polygonal chain or boxes (1 = hole).

Registered in `MASK_GENERATORS` (imported by `inpaint_jax.data.masks`):

* `study_mixed`: per mask, with probability 1/2 one polygonal chain, otherwise boxes.
* `square`: boxes only (the study's "square masks"; the sides are drawn independently,
  so they are rectangles).

The study's generator (`gen_large_mask_v2`, drawn with `numpy.random.uniform` and
`int()`), at 256 x 256:

* chain: a start pixel uniform over the image, then 1-3 segments, each with an angle
  uniform in [0, 2 pi), a length in 10..149 and a brush width in 5..69 pixels; the end
  point `int(start + length * (sin, cos)(angle))` is clipped to [0, W] x [0, H] and
  starts the next segment. Each segment is a `cv2.line` of that thickness, drawn here
  with `inpaint_jax.data.raster.rasterize` (which reproduces cv2's thick lines).
* boxes: 1-3 boxes with independent height and width in 50..149, the corner uniform with
  a margin of 10 pixels (`[margin, side - margin - size)`, the study's half-open range).
  A box is kept only while the union of the kept boxes covers less than half the image;
  the first box that would reach 50 % and every later one are dropped.

Differences from the study's code, on purpose: its box rule assigns `mask = temp_mask`
(an alias, not a copy), so every box is kept however large the union grows, and a first
box over 50 % leaves `mask` unset (a crash); here the 50 % cap holds, and a first box is
always kept. Draws come from a `numpy.random.Generator` (the study uses numpy's global
state), so masks match the study in distribution, not bit for bit.

Randomness: mask i of `sample_many(rngs, ...)` depends only on `rngs[i]` (three
`rng.random` calls per mask: kind and count, then the mask's parameters), and
`sample_batch(rng, n, ...)` equals n successive `sample(rng, ...)` calls, so the data
pipeline's per-(seed, example) generators give reproducible masks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from inpaint_jax.data.masks import ManyAtOnce, size_scaler
from inpaint_jax.data.raster import Boxes, Segments, rasterize
from inpaint_jax.registry import MASK_GENERATORS


def _uniform_int(u: np.ndarray | float, lo: int, hi: int) -> np.ndarray:
  """Integers uniform in lo..hi (inclusive) from uniforms in [0, 1)."""
  return lo + (np.asarray(u) * (hi - lo + 1)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class StudyMaskGenerator(ManyAtOnce):
  """The study's chain-or-boxes masks. Pixel sizes are for 256 x 256; ranges inclusive.

  Attributes:
    polygon_prob: probability of a polygonal chain (else boxes).
    min_segments, max_segments: segments per chain.
    min_length, max_length: segment length in pixels.
    min_width, max_width: brush width (cv2 thickness) in pixels.
    min_boxes, max_boxes: boxes drawn per box mask (before the area cap).
    min_side, max_side: box height and width in pixels.
    margin: pixels kept free on every side of a box.
    max_box_area: a box is kept only while the union of the boxes stays below this
      fraction of the image.
  """

  polygon_prob: float = 0.5
  min_segments: int = 1
  max_segments: int = 3
  min_length: int = 10
  max_length: int = 149
  min_width: int = 5
  max_width: int = 69
  min_boxes: int = 1
  max_boxes: int = 3
  min_side: int = 50
  max_side: int = 149
  margin: int = 10
  max_box_area: float = 0.5

  def __post_init__(self):
    if not 0.0 <= self.polygon_prob <= 1.0:
      raise ValueError(f"polygon_prob must be in [0, 1], got {self.polygon_prob!r}")
    for lo, hi, minimum in (("min_segments", "max_segments", 1), ("min_length", "max_length", 1),
                            ("min_width", "max_width", 1), ("min_boxes", "max_boxes", 1),
                            ("min_side", "max_side", 1)):
      a, b = getattr(self, lo), getattr(self, hi)
      if not minimum <= a <= b:
        raise ValueError(f"need {minimum} <= {lo} <= {hi}, got {a} and {b}")
    if self.margin < 0 or not 0.0 < self.max_box_area <= 1.0:
      raise ValueError(f"need margin >= 0 and 0 < max_box_area <= 1, got {self.margin} and "
                       f"{self.max_box_area}")

  def scaled(self, scale: float) -> StudyMaskGenerator:
    """Every pixel size times `scale` (half up; widths >= 2, other sizes >= 1, margin >= 0).

    The sizes are the study's for 256 px; `scale=0.25` draws the same shapes at 64 px.
    """
    if scale == 1.0:
      return self
    mul = size_scaler(scale)
    return dataclasses.replace(
        self, min_length=mul(self.min_length, 1), max_length=mul(self.max_length, 1),
        min_width=mul(self.min_width, 2), max_width=mul(self.max_width, 2),
        min_side=mul(self.min_side, 1), max_side=mul(self.max_side, 1),
        margin=mul(self.margin, 0))

  def _side_bounds(self, height: int, width: int) -> tuple[int, int]:
    # The corner is drawn in [margin, side - margin - size): at least one position.
    hi = min(self.max_side, height - 2 * self.margin - 1, width - 2 * self.margin - 1)
    if hi < self.min_side:
      raise ValueError(f"boxes of side >= {self.min_side} with margin {self.margin} do not fit "
                       f"a {height}x{width} mask")
    return self.min_side, hi

  def sample_primitives(self, rngs: Sequence[np.random.Generator], height: int,
                        width: int) -> tuple[np.ndarray, Segments, Boxes]:
    """Draws mask i from `rngs[i]` without drawing pixels.

    Returns:
      (is_polygon (n,) bool, segments, boxes), as `MixedMaskGenerator.sample_primitives`.
    """
    if height <= 0 or width <= 0:
      raise ValueError(f"mask size must be positive, got {height}x{width} (HxW)")
    if self.polygon_prob < 1.0:
      side_lo, side_hi = self._side_bounds(height, width)
    n = len(rngs)
    is_polygon = np.zeros(n, np.bool_)
    seg_cols: list[list[int]] = [[] for _ in range(6)]  # mask, x0, y0, x1, y1, thickness
    box_cols: list[list[int]] = [[] for _ in range(5)]  # mask, x, y, w, h
    strokes = np.zeros(n, np.int64)
    seg_per_stroke: list[int] = []
    boxes_per_mask = np.zeros(n, np.int64)
    for i, rng in enumerate(rngs):
      u_kind, u_count = rng.random(2).tolist()
      if u_kind < self.polygon_prob:
        is_polygon[i] = True
        count = int(_uniform_int(u_count, self.min_segments, self.max_segments))
        u = rng.random(2 + 3 * count)
        x, y = int(u[0] * width), int(u[1] * height)
        angle = 2 * np.pi * u[2::3]
        length = _uniform_int(u[3::3], self.min_length, self.max_length)
        thickness = _uniform_int(u[4::3], self.min_width, self.max_width)
        for a, ln, t in zip(angle.tolist(), length.tolist(), thickness.tolist(), strict=True):
          # int() truncates toward zero, then clip to [0, W] x [0, H], as the study does.
          x1 = min(max(int(x + ln * np.sin(a)), 0), width)
          y1 = min(max(int(y + ln * np.cos(a)), 0), height)
          for col, v in zip(seg_cols, (i, x, y, x1, y1, t), strict=True):
            col.append(v)
          x, y = x1, y1
        strokes[i] = 1
        seg_per_stroke.append(count)
      else:
        count = int(_uniform_int(u_count, self.min_boxes, self.max_boxes))
        u = rng.random((count, 4))
        bh = _uniform_int(u[:, 0], side_lo, side_hi)
        bw = _uniform_int(u[:, 1], side_lo, side_hi)
        m = self.margin
        y0 = m + (u[:, 2] * (height - 2 * m - bh)).astype(np.int64)
        x0 = m + (u[:, 3] * (width - 2 * m - bw)).astype(np.int64)
        canvas = np.zeros((height, width), np.bool_)
        limit = self.max_box_area * height * width
        for k in range(count):
          trial = canvas.copy()
          trial[y0[k]:y0[k] + bh[k], x0[k]:x0[k] + bw[k]] = True
          if k > 0 and trial.sum() >= limit:
            break  # the union only grows: every later box would be dropped too
          canvas = trial
          for col, v in zip(box_cols, (i, x0[k], y0[k], bw[k], bh[k]), strict=True):
            col.append(int(v))
          boxes_per_mask[i] += 1
    seg = Segments(*(np.asarray(c, np.int64) for c in seg_cols), strokes_per_mask=strokes,
                   segments_per_stroke=np.asarray(seg_per_stroke, np.int64))
    boxes = Boxes(*(np.asarray(c, np.int64) for c in box_cols), boxes_per_mask=boxes_per_mask)
    return is_polygon, seg, boxes

  def sample_many(self, rngs: Sequence[np.random.Generator], height: int, width: int, *,
                  out: np.ndarray | None = None) -> np.ndarray:
    """One mask per generator: (len(rngs), H, W) float32 in {0, 1}, 1 = hole."""
    _, seg, boxes = self.sample_primitives(rngs, height, width)
    return rasterize(len(rngs), height, width, seg, boxes, out=out)


MASK_GENERATORS.register("study_mixed")(lambda: StudyMaskGenerator())
MASK_GENERATORS.register("square")(lambda: StudyMaskGenerator(polygon_prob=0.0))
