"""LaMa's random training and evaluation masks, vectorised in numpy (1 = hole).

This reproduces `MixedMaskGenerator` from advimman/lama
(`saicinpainting/training/data/masks.py`) with the training settings of
`configs/training/data/abl-04-256-mh-dist.yaml` (lama-fourier, big-lama), plus the
generators behind LaMa's evaluation sets (`configs/data_gen/random_*.yaml`). Each mask
is either "irregular" (thick polyline strokes) or "box" (axis-aligned rectangles):

* irregular (`IrregularMaskParams`): a number of strokes; each starts at a uniform
  pixel and has 1 + randint(5) segments. A segment has angle `0.01 + randint(max_angle)`
  radians (`2 * 3.1415926 - angle` on even stroke indices), length `10 + randint(max_len)`
  and brush width `5 + randint(max_width)`; its end point
  `int32(start + length * (sin, cos)(angle))` is clipped to [0, W] x [0, H] (inclusive:
  one past the last pixel, as in LaMa) and becomes the next start.
* box (`BoxMaskParams`): `randint(min_times, max_times + 1)` boxes with independent
  widths and heights in `[bbox_min_size, bound)`,
  `bound = min(bbox_max_size + 1, H - 2 * margin, W - 2 * margin)`, placed uniformly
  with `margin` pixels kept free on every side.

Quirk kept on purpose: the stroke count is `U{min_times .. max_times + 1}`, one more than
configured. LaMa's wrapper passes `cur_max_times = min_times + 1 + (max_times -
min_times)` (ramp coefficient 1) to a function that then draws `randint(min_times,
cur_max_times + 1)`, so the training default `max_times=5` gives 1..6 strokes. The
params below hold the values as written in LaMa's configs; the +1 is applied when
sampling. (Box counts have no such shift; box *sizes* get the wrapper's +1, which makes
`bbox_max_size` itself reachable.)

Randomness. Mask i of `sample_batch(rng, n, ...)` is what the i-th of n successive
`sample(rng, ...)` calls would give, and `sample_many(rngs, ...)` equals
`[sample(r, ...) for r in rngs]`: the draws are sequential per mask (a short Python
step per mask), the geometry and the drawing are batched. Each mask takes two
`rng.random` calls (kind and count, then all its stroke or box parameters); a uniform
integer in [0, k) is `floor(k * u)`, which is below k for every u in [0, 1) under IEEE
rounding and gives each value a probability within 2**-52 of 1/k (one `rng.random`
call costs a fifth of one `Generator.integers` call). LaMa draws from numpy's global
RandomState, so masks match it in distribution, not bit for bit.

Rasterisation. LaMa draws each segment with `cv2.line(thickness=t)`. For t >= 2
OpenCV (`ThickLine` in imgproc/drawing.cpp) fills the rectangle of half-width
r = ceil(t / 2) around the segment as a fixed-point polygon and puts a filled circle of
radius r on both ends (exactly the pixels with dx^2 + dy^2 <= r^2; checked for
t = 2..119). Its polygon fill takes pixels up to about half a pixel outside the exact
rectangle. We draw, per image column, the union of the two discs and the rectangle
widened to half-width r + 0.5 (pixel centres inside): of the variants measured (widening
0 to 0.55, spans rounded or inside) it matches cv2 best, while an exact capsule of radius
r would miss 1.2% of cv2's pixels. Every segment and box of a batch becomes column
spans, scattered as +1/-1 into a uint8 difference array and summed down the columns: no
Python loop per segment or per box.

Measured against a dev-time copy of the official cv2 code (`masks_bench.py`,
opencv-python-headless 5.0, numpy 2.4):

* Per pixel, the same segments drawn by both (the segments of 500 official irregular
  masks at 256x256): 0.078% of cv2's stroke pixels are extra in ours and 0.057% are
  missing (net +0.02%); whole masks differ in 0.041% of their pixels.
* Hole fraction at 256x256, mean (std); ours over 300,000 masks, cv2 over 150,000:

    kind             ours             cv2              difference
    lama_mixed       0.3532 (0.2020)  0.3521 (0.2021)  +0.0011 +- 0.0006
    lama_irregular   0.4581 (0.2140)  0.4580 (0.2140)  +0.0001 +- 0.0007
    lama_box         0.2471 (0.1158)  0.2468 (0.1160)  +0.0003 +- 0.0004

  The eval presets agree within 1.4 standard errors (`masks_bench.py --compare`, 20,000
  masks at 256, 5,000 at 512).
* Speed, one core, 256x256 lama_mixed (`python -m inpaint_jax.data.masks_bench --n 20000`
  with cv2 on PYTHONPATH; a shared VM, so +-20% between runs): `sample_batch` in batches
  of 64 makes 15,000-19,000 masks/s, the cv2 reference 5,400 on the same core
  (2.8-3.4x). `sample_many`
  with a new `default_rng` per mask makes 14,000-15,000. A lone `sample` call makes only
  4,300-4,800/s: it is ~150 numpy calls on small arrays, so code that draws many masks at
  once should use one `sample_many` call (same masks as per-example `sample`).

Not reproduced: LaMa's eval sets also pass each mask through `bin/gen_mask_dataset.py`
(a square crop around the mask, dropping masks that cover more than half the image);
the `lama_*_256/512` presets here are only the generators.

Usage:

  gen = masks.build({"kind": "lama_mixed"})                  # or a ConfigDict
  m = gen.sample(np.random.default_rng(0), 256, 256)          # (256, 256) float32, {0, 1}
  b = gen.sample_batch(rng, 64, 256, 256)                     # (64, 256, 256), faster/mask
  c = gen.sample_many([np.random.default_rng([s, i]) for i in range(64)], 256, 256)
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from inpaint_jax.registry import MASK_GENERATORS

# LaMa writes `2 * 3.1415926 - angle`, not 2 * pi; kept so the segment end points (which
# are truncated to int) come out the same as in the official code.
_LAMA_TWO_PI = 2 * 3.1415926
_SEGMENTS = 5          # LaMa: `for j in range(1 + np.random.randint(5))`
_STROKE_DRAWS = 3 + 3 * _SEGMENTS  # x, y, segment count; angle, length, width per segment
_BOX_DRAWS = 4         # width, height, x, y
_BIG = 1e9             # "no span" offset, far outside any image
_NUDGE = 1e-6          # stands in for a zero direction component (see _segment_spans)
_BLOCK = 16            # rows per block of the prefix sum (see _prefix_sum_rows)
# Masks rasterised together, in difference-array bytes (30 masks of 256x256): measured
# best on one core; smaller chunks pay more numpy call overhead per mask.
_CHUNK_BYTES = 1 << 21
# Coverage counters, narrowest first, with their modulus (see `rasterize`).
_COUNT_TYPES = ((np.uint8, 1 << 8), (np.uint16, 1 << 16), (np.uint32, 1 << 32))


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------
def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{owner}.{name} must be an int, got {value!r}")
  if value < minimum:
    raise ValueError(f"{owner}.{name} must be >= {minimum}, got {value}")


@dataclasses.dataclass(frozen=True)
class IrregularMaskParams:
  """LaMa's `RandomIrregularMaskGenerator` settings (defaults: training, abl-04-256-mh-dist).

  Attributes:
    max_angle: segment angles are `0.01 + randint(max_angle)` radians.
    max_len: segment lengths are `10 + randint(max_len)` pixels.
    max_width: brush widths (cv2 thickness) are `5 + randint(max_width)` pixels.
    min_times: fewest strokes per mask.
    max_times: most strokes per mask *as configured*; LaMa draws up to `max_times + 1`.
  """

  max_angle: int = 4
  max_len: int = 200
  max_width: int = 100
  min_times: int = 1
  max_times: int = 5

  def __post_init__(self):
    for name, minimum in (("max_angle", 1), ("max_len", 1), ("max_width", 1),
                          ("min_times", 0), ("max_times", 0)):
      _check_int("irregular", name, getattr(self, name), minimum)
    if self.max_times < self.min_times:
      raise ValueError(f"irregular.max_times ({self.max_times}) must be >= irregular.min_times "
                       f"({self.min_times})")

  @property
  def stroke_count_range(self) -> tuple[int, int]:
    """(low, high) inclusive range of the stroke count, LaMa's off-by-one included."""
    return self.min_times, self.max_times + 1


@dataclasses.dataclass(frozen=True)
class BoxMaskParams:
  """LaMa's `RandomRectangleMaskGenerator` settings (defaults: training, abl-04-256-mh-dist).

  Attributes:
    margin: pixels kept free of boxes on every side.
    bbox_min_size: smallest box side.
    bbox_max_size: largest box side (reachable), unless the image minus margins is smaller.
    min_times: fewest boxes per mask.
    max_times: most boxes per mask.
  """

  margin: int = 10
  bbox_min_size: int = 30
  bbox_max_size: int = 150
  min_times: int = 1
  max_times: int = 4

  def __post_init__(self):
    for name, minimum in (("margin", 0), ("bbox_min_size", 1), ("bbox_max_size", 1),
                          ("min_times", 0), ("max_times", 0)):
      _check_int("box", name, getattr(self, name), minimum)
    if self.bbox_max_size < self.bbox_min_size:
      raise ValueError(f"box.bbox_max_size ({self.bbox_max_size}) must be >= "
                       f"box.bbox_min_size ({self.bbox_min_size})")
    if self.max_times < self.min_times:
      raise ValueError(f"box.max_times ({self.max_times}) must be >= box.min_times "
                       f"({self.min_times})")

  def size_bound(self, height: int, width: int) -> int:
    """Exclusive upper bound of box sides for an image of this size (LaMa's `bbox_max_size`).

    Raises:
      ValueError: if no box fits, i.e. the bound is not above `bbox_min_size`.
    """
    bound = min(self.bbox_max_size + 1, height - 2 * self.margin, width - 2 * self.margin)
    if bound <= self.bbox_min_size:
      raise ValueError(
          f"box masks do not fit a {height}x{width} (HxW) image: sides must be in "
          f"[bbox_min_size={self.bbox_min_size}, min(bbox_max_size + 1, H - 2 * margin, "
          f"W - 2 * margin) = {bound}), margin={self.margin}")
    return bound


# ------------------------------------------------------------------------------------------
# Sampled primitives (exposed so that tests and the benchmark can see what was drawn)
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Segments:
  """Thick line segments of a batch of irregular masks, ordered by mask, stroke, segment.

  Attributes:
    mask: (S,) int64 index of the mask each segment belongs to.
    x0, y0, x1, y1: (S,) int64 end points in pixels; x in [0, W], y in [0, H].
    thickness: (S,) int64 cv2 line thickness (brush width).
    strokes_per_mask: (n,) int64 stroke count of each mask (0 for box masks).
    segments_per_stroke: (sum(strokes_per_mask),) int64, in 1..5.
  """

  mask: np.ndarray
  x0: np.ndarray
  y0: np.ndarray
  x1: np.ndarray
  y1: np.ndarray
  thickness: np.ndarray
  strokes_per_mask: np.ndarray
  segments_per_stroke: np.ndarray


@dataclasses.dataclass(frozen=True)
class Boxes:
  """Rectangles of a batch of box masks: pixels [y, y + h) x [x, x + w) are holes.

  Attributes:
    mask: (B,) int64 index of the mask each box belongs to, ascending.
    x, y, w, h: (B,) int64.
    boxes_per_mask: (n,) int64 (0 for irregular masks).
  """

  mask: np.ndarray
  x: np.ndarray
  y: np.ndarray
  w: np.ndarray
  h: np.ndarray
  boxes_per_mask: np.ndarray


def _floor_mul(u: np.ndarray, k: Any) -> np.ndarray:
  """Uniform integers in [0, k) from uniforms u in [0, 1): floor(k * u), int64.

  IEEE rounding never lifts k * u to k for u <= 1 - 2**-53 and k < 2**52.
  """
  return (u * k).astype(np.int64)


def _segments(u: np.ndarray, stroke_mask: np.ndarray, stroke_index: np.ndarray,
              times: np.ndarray, height: int, width: int,
              params: IrregularMaskParams) -> Segments:
  """Turns (strokes, 18) uniforms into segments, as `make_random_irregular_mask` does."""
  s = _SEGMENTS
  bounds = np.array([width, height, s] + [params.max_angle] * s + [params.max_len] * s
                    + [params.max_width] * s)
  draws = _floor_mul(u, bounds)
  num_segments = 1 + draws[:, 2]
  angle = 0.01 + draws[:, 3:3 + s]
  # Even-numbered strokes of a mask are mirrored (LaMa: `if i % 2 == 0`).
  angle = np.where((stroke_index % 2 == 0)[:, None], _LAMA_TWO_PI - angle, angle)
  length = 10 + draws[:, 3 + s:3 + 2 * s]
  thickness = 5 + draws[:, 3 + 2 * s:]
  step = length * np.stack([np.sin(angle), np.cos(angle)])  # (2, strokes, 5), float64
  # points[:, i, j] is the start of segment j of stroke i (x in row 0, y in row 1).
  points = np.empty((2, u.shape[0], s + 1), np.int64)
  points[:, :, 0] = draws[:, :2].T
  limit = np.array([[width], [height]])
  for j in range(s):
    # float64, truncated toward zero, clipped to [0, W] x [0, H], as in LaMa. The next
    # segment starts at the clipped point, so this cannot become a cumulative sum.
    end = (points[:, :, j] + step[:, :, j]).astype(np.int32)
    points[:, :, j + 1] = np.minimum(np.maximum(end, 0), limit)
  live = np.arange(s) < num_segments[:, None]  # (strokes, 5)
  return Segments(
      mask=np.repeat(stroke_mask, num_segments),
      x0=points[0, :, :-1][live], y0=points[1, :, :-1][live],
      x1=points[0, :, 1:][live], y1=points[1, :, 1:][live],
      thickness=thickness[live], strokes_per_mask=times, segments_per_stroke=num_segments)


def _boxes(u: np.ndarray, box_mask: np.ndarray, times: np.ndarray, height: int, width: int,
           params: BoxMaskParams) -> Boxes:
  """Turns (boxes, 4) uniforms into boxes, as `make_random_rectangle_mask` does."""
  lo, m = params.bbox_min_size, params.margin
  size = lo + _floor_mul(u[:, :2], params.size_bound(height, width) - lo)  # (w, h)
  # x in [margin, W - margin - w], y likewise.
  corner = m + _floor_mul(u[:, 2:], np.array([width, height]) - 2 * m - size + 1)
  return Boxes(mask=box_mask, x=corner[:, 0], y=corner[:, 1], w=size[:, 0], h=size[:, 1],
               boxes_per_mask=times)


# ------------------------------------------------------------------------------------------
# Rasterisation
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Layout:
  """Where pixel (mask m, row y, column x) of a chunk lives in the flat difference array.

  The index is (m - first_mask) * mask_stride + y * row_stride + x. Rows are outermost
  (row_stride = chunk * W, mask_stride = W): the prefix sum then adds long contiguous
  rows covering every mask of the chunk at once.
  """

  first_mask: int
  mask_stride: int
  row_stride: int
  height: int
  width: int
  ftype: type  # float type of the index arithmetic: float32 while exact (< 2**24)


def _segment_spans(seg: Segments, sl: slice, at: _Layout) -> tuple[np.ndarray, np.ndarray]:
  """Column spans covered by the segments `seg[sl]`, as difference-array indices.

  A segment p0 -> p1 with cv2 thickness t covers, in each column, the union of
  * the discs of radius r = ceil(t / 2) around p0 and p1 (integer centres: exact), and
  * the rectangle {p0 + a * u + b * v : 0 <= a <= L, |b| <= r + 0.5} (u along the
    segment, v across it): the intersection of two slabs, each a y-interval per column.
  Per column the union is taken as one interval (this can only fill sub-pixel gaps at
  the rectangle corners). A zero component of u would divide by zero: 1e-6 stands in
  for it, which turns that slab into "all y" or "no y" with the right sign; the columns
  where that is inexact are the end columns of axis-parallel segments, which the discs
  cover.

  The work per column is ~30 whole-array float operations, with no masking or
  compaction (boolean indexing costs ~10 arithmetic ops). Intervals are kept as
  (-lo, hi) pairs in a (2, E) array, so that both ends are updated by one call: the
  slab intersection is a minimum, the union with a disc a maximum. An empty rectangle
  interval is moved far out of the way; off-disc columns are NaN, which fmax skips;
  an empty span gets stop = start, so its +1 and -1 cancel.

  Args:
    seg: the segments; `sl` selects those of the masks of one chunk.
    sl: which segments.
    at: the chunk's difference-array layout.

  Returns:
    (start, stop): flat int64 indices of the +1 and the -1 of each span (stop is
    start + rows * row_stride); a stop may lie in row H, below the image.
  """
  height, width, ftype = at.height, at.width, at.ftype
  x0, y0, x1, y1 = seg.x0[sl], seg.y0[sl], seg.x1[sl], seg.y1[sl]
  r = (seg.thickness[sl] + 1) // 2
  col_lo = np.maximum(np.minimum(x0, x1) - r, 0)
  counts = np.minimum(np.maximum(x0, x1) + r, width - 1) - col_lo + 1  # >= 1
  first = np.cumsum(counts) - counts  # first entry of each segment

  # Per-segment constants (small arrays; float64 for the divisions).
  dx, dy = (x1 - x0).astype(np.float64), (y1 - y0).astype(np.float64)
  length = np.hypot(dx, dy)
  inv_len = 1.0 / np.where(length > 0, length, 1.0)
  ux, uy = dx * inv_len, dy * inv_len
  ux = np.where(ux == 0, _NUDGE, ux)
  uy = np.where(uy == 0, _NUDGE, uy)
  per_seg = np.empty((14, x0.size), ftype)
  s1, h1, s2, rr, x_off, base = per_seg[:6]
  # Across: |ux * Y - uy * X| <= r + 1/2  ->  Y in X * s1 -+ h1 (nothing if length is 0).
  np.divide(uy, ux, out=s1)
  h1[...] = np.where(length > 0, (r + 0.5) / np.abs(ux), -_BIG)
  # Along: 0 <= ux * X + uy * Y <= length  ->  Y in X * s2 + [a2, b2], kept as (-a2, b2).
  np.divide(-ux, uy, out=s2)
  l_uy = length / uy
  per_seg[6] = -np.minimum(0.0, l_uy)
  per_seg[7] = np.maximum(0.0, l_uy)
  rr[...] = r * r
  # Entry e of a segment is column col_lo + e - first, at X = e - x_off from p0; its
  # row-0 cell is e + base.
  x_off[...] = first + x0 - col_lo
  base[...] = (seg.mask[sl] - at.first_mask) * at.mask_stride + col_lo - first
  per_seg[8] = 0.0
  per_seg[9] = dx
  per_seg[10] = -dy
  per_seg[11] = dy
  per_seg[12] = -y0
  per_seg[13] = y0
  per_entry = np.repeat(per_seg, counts, axis=1)
  s1, h1, s2, rr, x_off, base = per_entry[:6]
  neg_a2_b2, zero_dx, neg_dy_dy, neg_y0_y0 = per_entry[6:].reshape(4, 2, -1)

  e = np.arange(s1.size).astype(ftype)
  xx = e - x_off
  sx = np.multiply(np.array([[-1], [1]], ftype), xx)  # (-X, X)
  span = sx * s1
  span += h1  # (-lo, hi) of the across-slab
  t = np.multiply(sx, s2, out=sx)
  t += neg_a2_b2  # (-lo, hi) of the along-slab
  np.minimum(span, t, out=span)
  np.floor(span, out=span)  # (-ceil(lo), floor(hi)): pixel centres inside
  # Empty rectangle interval (lo > hi): shift it out of the way of the max below.
  span -= np.multiply(span[0] + span[1] < 0, ftype(_BIG))
  with np.errstate(invalid="ignore"):  # NaN off the discs
    q = np.subtract(xx, zero_dx, out=zero_dx)  # X, X - dx
    np.multiply(q, q, out=q)
    np.subtract(rr, q, out=q)
    np.sqrt(q, out=q)
    half_chord = np.floor(q, out=q)  # exact: r^2 - X^2 is a small integer
    np.fmax(span, half_chord[0], out=span)  # disc at p0 spans [-hc, hc]
    np.fmax(span, np.add(neg_dy_dy, half_chord[1], out=neg_dy_dy), out=span)  # at p1
  span += neg_y0_y0  # to absolute rows
  # Bounds as full arrays: numpy's minimum/maximum against a scalar or a broadcast
  # column take a slow path (10x), against a same-shape array a vectorised one.
  bound = np.empty_like(span)
  bound[0].fill(0)
  bound[1].fill(height - 1)
  np.minimum(span, bound, out=span)  # clip to the image: lo >= 0, hi <= H - 1
  # Rows [lo, hi] -> [start, stop) = [lo, hi + 1): n = hi - lo + 1 rows, none if n <= 0.
  # An empty span keeps its start in the array (lo <= H) and gets stop = start.
  span[1] += span[0]
  span[1] += 1
  bound[0].fill(-height)
  bound[1].fill(0)
  neg_lo, n_rows = np.maximum(span, bound, out=span)
  np.multiply(span, ftype(at.row_stride), out=span)
  start = np.subtract(e, neg_lo, out=e)
  start += base
  stop = start + n_rows
  return start.astype(np.int64), stop.astype(np.int64)


def _box_spans(boxes: Boxes, sl: slice, at: _Layout) -> tuple[np.ndarray, np.ndarray]:
  """Like `_segment_spans`, for the boxes `boxes[sl]` (never empty, never clipped)."""
  w = boxes.w[sl]
  box_id = np.repeat(np.arange(w.size), w)
  first = np.cumsum(w) - w
  start = ((boxes.mask[sl] - at.first_mask) * at.mask_stride + boxes.y[sl] * at.row_stride
           + boxes.x[sl] - first)[box_id] + np.arange(box_id.size)
  return start, start + (boxes.h[sl] * at.row_stride)[box_id]


def _prefix_sum_rows(d: np.ndarray, block: int) -> None:
  """In-place cumulative sum over the rows of d (rows, cols), rows a multiple of `block`.

  numpy's cumsum along a non-last axis runs element by element; this adds whole rows
  (vectorised): first within blocks of `block` rows, then the block totals, then each
  block's offset: about block + rows / block numpy calls.
  """
  rows, cols = d.shape
  v = d.reshape(rows // block, block, cols)
  for i in range(1, block):
    np.add(v[:, i], v[:, i - 1], out=v[:, i])
  if rows // block > 1:
    offset = v[:-1, -1].copy()  # totals of blocks 0 .. nb - 2
    for j in range(1, offset.shape[0]):
      np.add(offset[j], offset[j - 1], out=offset[j])
    v[1:] += offset[:, None]


def rasterize(n: int, height: int, width: int, segments: Segments | None = None,
              boxes: Boxes | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
  """Draws segments and boxes into `n` masks.

  Each primitive becomes column spans; +1 / -1 at each span's first row / one past its
  last row go into a difference array, and a prefix sum down the columns counts the
  spans covering each pixel. The count is kept modulo 2**8 (or 2**16, 2**32), which is
  exact for "is it non-zero" while no mask has as many primitives as the modulus.

  Args:
    n: number of masks.
    height, width: mask size H, W.
    segments: thick segments (see `Segments`), ordered by mask, or None.
    boxes: rectangles (see `Boxes`), ordered by mask, or None.
    out: optional (n, H, W) float32 array to write into (any strides). Reusing one
      saves the page faults of fresh memory, which cost as much as drawing on some VMs.

  Returns:
    (n, H, W) float32, 1 where a primitive covers the pixel centre, else 0 (`out` if given).
  """
  if out is None:
    out = np.empty((n, height, width), np.float32)
  elif out.shape != (n, height, width) or out.dtype != np.float32:
    raise ValueError(f"out must be a float32 array of shape {(n, height, width)}, got "
                     f"{out.dtype} {out.shape}")
  parts = [(p, fn) for p, fn in ((segments, _segment_spans), (boxes, _box_spans))
           if p is not None and p.mask.size]
  most = max([int(np.bincount(p.mask).max()) for p, _ in parts], default=0)
  dtype = next(t for t, top in _COUNT_TYPES if most < top)
  plus, minus = dtype(1), dtype(-1 % (1 << (8 * np.dtype(dtype).itemsize)))  # +-1 mod 2**b
  rows = -(-(height + 1) // _BLOCK) * _BLOCK  # rows H.. take the stops at the border
  chunk = max(1, min(n, _CHUNK_BYTES // (rows * width * np.dtype(dtype).itemsize)))
  ftype = np.float32 if chunk * rows * width < 2**24 else np.float64
  edges = np.arange(0, n + chunk, chunk)
  bounds = [np.searchsorted(p.mask, edges) for p, _ in parts]
  buffer = np.empty(rows * chunk * width, dtype)
  nonzero = np.empty(height * chunk * width, np.bool_)
  for c, m0 in enumerate(range(0, n, chunk)):
    k = min(chunk, n - m0)
    count = buffer[:rows * k * width]  # (rows, k, W) layout, see _Layout
    count.fill(0)
    at = _Layout(m0, width, k * width, height, width, ftype)
    for (prims, spans), b in zip(parts, bounds, strict=True):
      if b[c + 1] > b[c]:
        start, stop = spans(prims, slice(b[c], b[c + 1]), at)
        # A typed scalar value puts add.at on numpy's fast path (~2 ns per entry).
        np.add.at(count, start, plus)
        np.add.at(count, stop, minus)
    count = count.reshape(rows, k * width)
    _prefix_sum_rows(count, _BLOCK)
    nz = nonzero[:height * k * width].reshape(height, k, width)
    np.not_equal(count[:height].reshape(height, k, width), 0, out=nz)
    np.copyto(out[m0:m0 + k], nz.transpose(1, 0, 2).view(np.uint8), casting="unsafe")
  return out


# ------------------------------------------------------------------------------------------
# Generators
# ------------------------------------------------------------------------------------------
class MaskGenerator(Protocol):
  """A random mask generator. Implementations must be stateless (thread-safe)."""

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (height, width) float32 mask in {0, 1}, 1 = hole."""
    ...

  def sample_batch(self, rng: np.random.Generator, n: int, height: int,
                   width: int) -> np.ndarray:
    """(n, height, width) float32 masks in {0, 1}, 1 = hole."""
    ...

  def sample_many(self, rngs: Sequence[np.random.Generator], height: int,
                  width: int) -> np.ndarray:
    """(len(rngs), height, width) float32 masks, mask i drawn from rngs[i]."""
    ...


@dataclasses.dataclass(frozen=True)
class MixedMaskGenerator:
  """LaMa's `MixedMaskGenerator` restricted to irregular and box masks.

  Each mask is irregular with probability `irregular_prob / (irregular_prob + box_prob)`
  and box otherwise. As in LaMa the two are weights, normalised by their sum (LaMa's
  eval configs give 1 and 0.3); a weight of 0 switches that kind off.

  Attributes:
    irregular: settings of the irregular (stroke) masks.
    box: settings of the box masks.
    irregular_prob: weight of irregular masks.
    box_prob: weight of box masks.
  """

  irregular: IrregularMaskParams = IrregularMaskParams()
  box: BoxMaskParams = BoxMaskParams()
  irregular_prob: float = 0.5
  box_prob: float = 0.5

  def __post_init__(self):
    for name in ("irregular_prob", "box_prob"):
      value = getattr(self, name)
      if (isinstance(value, bool) or not isinstance(value, numbers.Real)
          or not 0 <= value < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if self.irregular_prob + self.box_prob <= 0:
      raise ValueError("irregular_prob + box_prob must be > 0")

  @property
  def p_irregular(self) -> float:
    """Probability that a mask is irregular (the normalised weight)."""
    return float(self.irregular_prob) / (float(self.irregular_prob) + float(self.box_prob))

  def sample_primitives(self, rngs: Sequence[np.random.Generator], height: int,
                        width: int) -> tuple[np.ndarray, Segments, Boxes]:
    """Draws mask i from `rngs[i]` (the same generator may repeat), without drawing pixels.

    Returns:
      (is_irregular (n,) bool, segments, boxes); their `mask` fields index the n masks.
    """
    if height <= 0 or width <= 0:
      raise ValueError(f"mask size must be positive, got {height}x{width} (HxW)")
    if self.box_prob > 0:
      self.box.size_bound(height, width)  # fail on every call, not only when a box is drawn
    p_irregular = self.p_irregular
    irr_lo, irr_hi = self.irregular.stroke_count_range
    box_lo, box_hi = self.box.min_times, self.box.max_times
    n = len(rngs)
    is_irregular = np.zeros(n, np.bool_)
    times = np.zeros(n, np.int64)
    stroke_u, box_u = [], []
    # Sequential per mask, so mask i depends only on its generator's state. Two draws
    # per mask; the rest of the work is batched below.
    for i, rng in enumerate(rngs):
      u_kind, u_times = rng.random(2).tolist()
      if u_kind < p_irregular:
        is_irregular[i] = True
        times[i] = count = irr_lo + int(u_times * (irr_hi - irr_lo + 1))
        stroke_u.append(rng.random((count, _STROKE_DRAWS)))
      else:
        times[i] = count = box_lo + int(u_times * (box_hi - box_lo + 1))
        box_u.append(rng.random((count, _BOX_DRAWS)))

    strokes = np.where(is_irregular, times, 0)
    box_times = times - strokes
    empty = np.zeros(0, np.int64)
    if stroke_u:
      stroke_mask = np.repeat(np.arange(n), strokes)
      stroke_index = np.arange(stroke_mask.size) - np.repeat(np.cumsum(strokes) - strokes,
                                                            strokes)
      seg = _segments(np.concatenate(stroke_u), stroke_mask, stroke_index, strokes, height,
                      width, self.irregular)
    else:
      seg = Segments(*(empty,) * 6, strokes, empty)
    if box_u:
      boxes = _boxes(np.concatenate(box_u), np.repeat(np.arange(n), box_times), box_times,
                     height, width, self.box)
    else:
      boxes = Boxes(*(empty,) * 5, box_times)
    return is_irregular, seg, boxes

  def sample_many(self, rngs: Sequence[np.random.Generator], height: int, width: int, *,
                  out: np.ndarray | None = None) -> np.ndarray:
    """One mask per generator: (len(rngs), H, W) float32 in {0, 1}.

    Equals `np.stack([self.sample(r, height, width) for r in rngs])` (same generator
    states), at the per-mask cost of `sample_batch`. For a data pipeline that seeds
    each example separately.

    Args:
      rngs: one generator per mask (the same one may repeat: then its draws are
        consumed in order).
      height, width: mask size H, W.
      out: optional (len(rngs), H, W) float32 array to fill (see `rasterize`).
    """
    _, seg, boxes = self.sample_primitives(rngs, height, width)
    return rasterize(len(rngs), height, width, seg, boxes, out=out)

  def sample_batch(self, rng: np.random.Generator, n: int, height: int, width: int, *,
                   out: np.ndarray | None = None) -> np.ndarray:
    """`n` masks, (n, H, W) float32 in {0, 1}, 1 = hole; deterministic in `rng`.

    Mask i equals the i-th of n successive `sample(rng, height, width)` calls.
    `out`: optional (n, H, W) float32 array to fill (see `rasterize`).
    """
    if n < 0:
      raise ValueError(f"n must be >= 0, got {n}")
    return self.sample_many([rng] * n, height, width, out=out)

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (H, W) float32 mask in {0, 1}, 1 = hole; equals `sample_batch(rng, 1, ...)[0]`."""
    return self.sample_many([rng], height, width)[0]


# ------------------------------------------------------------------------------------------
# Presets and config
# ------------------------------------------------------------------------------------------
def _preset(name: str, gen: MixedMaskGenerator) -> None:
  MASK_GENERATORS.register(name)(lambda: gen)


# Training masks of lama-fourier and big-lama (abl-04-256-mh-dist): 50/50.
_preset("lama_mixed", MixedMaskGenerator())
_preset("lama_irregular", MixedMaskGenerator(box_prob=0.0, irregular_prob=1.0))
_preset("lama_box", MixedMaskGenerator(irregular_prob=0.0, box_prob=1.0))

# Evaluation generators, configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml:
# irregular weight 1, box weight 0.3 (so 1/1.3 = 76.9% irregular) or no boxes.
_EVAL_BOX_P = 0.3 / 1.3
_preset("lama_thin_256", MixedMaskGenerator(
    IrregularMaskParams(max_len=40, max_width=10, min_times=4, max_times=50),
    irregular_prob=1.0, box_prob=0.0))
_preset("lama_thin_512", MixedMaskGenerator(
    IrregularMaskParams(max_len=100, max_width=20, min_times=4, max_times=70),
    irregular_prob=1.0, box_prob=0.0))
_preset("lama_medium_256", MixedMaskGenerator(
    IrregularMaskParams(max_len=100, max_width=50, min_times=4, max_times=5),
    BoxMaskParams(margin=0, bbox_min_size=10, bbox_max_size=50, min_times=1, max_times=5),
    irregular_prob=1 - _EVAL_BOX_P, box_prob=_EVAL_BOX_P))
_preset("lama_medium_512", MixedMaskGenerator(
    IrregularMaskParams(max_len=200, max_width=100, min_times=4, max_times=10),
    BoxMaskParams(margin=0, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=5),
    irregular_prob=1 - _EVAL_BOX_P, box_prob=_EVAL_BOX_P))
_preset("lama_thick_256", MixedMaskGenerator(
    IrregularMaskParams(max_len=200, max_width=100, min_times=1, max_times=5),
    BoxMaskParams(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=3),
    irregular_prob=1 - _EVAL_BOX_P, box_prob=_EVAL_BOX_P))
_preset("lama_thick_512", MixedMaskGenerator(
    IrregularMaskParams(max_len=450, max_width=250, min_times=1, max_times=5),
    BoxMaskParams(margin=10, bbox_min_size=30, bbox_max_size=300, min_times=1, max_times=4),
    irregular_prob=1 - _EVAL_BOX_P, box_prob=_EVAL_BOX_P))


def _to_dict(cfg: Any) -> dict[str, Any]:
  if hasattr(cfg, "to_dict"):  # ml_collections.ConfigDict / FrozenConfigDict
    cfg = cfg.to_dict()
  if not isinstance(cfg, Mapping):
    raise ValueError(f"mask config must be a mapping or ConfigDict, got {type(cfg).__name__}")
  return dict(cfg)


# Pixel-size fields that `scale` multiplies (the rest are counts and angles).
_SCALED_FIELDS = {"irregular": ("max_len", "max_width"),
                  "box": ("margin", "bbox_min_size", "bbox_max_size")}


def _drop_unset(cfg: dict[str, Any]) -> dict[str, Any]:
  """Removes None values (config placeholders: "keep the preset's value")."""
  out = {}
  for key, value in cfg.items():
    if value is None:
      continue
    if isinstance(value, Mapping) or hasattr(value, "to_dict"):
      value = _drop_unset(_to_dict(value))
    out[key] = value
  return out


def scaled(gen: MixedMaskGenerator, scale: float) -> MixedMaskGenerator:
  """The preset with every pixel size times `scale` (rounded half up, at least 1).

  Presets are defined at 256 or 512 px; `scale=0.25` gives the same mask
  shapes for 64 px crops. Counts (strokes, boxes) and angles are unchanged.
  """
  if scale == 1.0:
    return gen
  if not 0 < scale < float("inf"):
    raise ValueError(f"scale must be a positive number, got {scale!r}")

  def mul(v: int, minimum: int) -> int:
    return max(minimum, int(v * scale + 0.5))

  irr = dataclasses.replace(gen.irregular, **{
      k: mul(getattr(gen.irregular, k), 1) for k in _SCALED_FIELDS["irregular"]})
  box = dataclasses.replace(gen.box, **{
      k: mul(getattr(gen.box, k), 0 if k == "margin" else 1) for k in _SCALED_FIELDS["box"]})
  return dataclasses.replace(gen, irregular=irr, box=box)


def build(cfg: Mapping[str, Any] | Any, *, field: str = "masks") -> MaskGenerator:
  """Builds the mask generator named by `cfg["kind"]`, with optional overrides.

  The preset named by `kind` brings all of its own parameters; the other
  fields change only what they set (None means "the preset's value"), so
  switching `kind` switches every parameter.

  Args:
    cfg: mapping or ConfigDict with `kind` (a name in `MASK_GENERATORS`, e.g.
      "lama_mixed", the training default) and optionally `scale` (multiplies
      the preset's pixel sizes, see `scaled`), `irregular_prob`, `box_prob`,
      `irregular` / `box` (mappings of `IrregularMaskParams` / `BoxMaskParams`
      fields, applied after the scaling), or the same as dotted keys
      (`"irregular.max_width": 50`).
    field: the config path of `cfg`, used in error messages.

  Returns:
    The generator (stateless; safe to share between threads).

  Raises:
    ValueError: for a missing or unknown kind, an unknown field or a bad value; the
      message names the field and the accepted names.
  """
  cfg = _drop_unset(_to_dict(cfg))
  if "kind" not in cfg:
    raise ValueError(f"config field {field}.kind is missing; accepted: "
                     f"{', '.join(MASK_GENERATORS.names())}")
  factory: Callable[[], Any] = MASK_GENERATORS.get(cfg.pop("kind"), field=f"{field}.kind")
  scale = cfg.pop("scale", 1.0)
  if getattr(factory, "accepts_overrides", False):
    # A generator class configured by its own dataclass fields (e.g. `dfnet_folder`).
    if scale != 1.0:
      raise ValueError(f"config field {field}.scale: this kind draws at relative sizes; "
                       "leave scale at 1")
    names = [f.name for f in dataclasses.fields(factory)]
    unknown = sorted(set(cfg) - set(names))
    if unknown:
      raise ValueError(f"config fields {', '.join(f'{field}.{k}' for k in unknown)}: unknown; "
                       f"accepted: kind, {', '.join(names)}")
    try:
      return factory(**cfg)
    except (TypeError, ValueError) as e:
      raise ValueError(f"config field {field}: {e}") from None
  gen = factory()
  if not isinstance(gen, MixedMaskGenerator):
    # Other generators may offer `scaled(scale)` (e.g. `study_mixed`), nothing else.
    if cfg or (scale != 1.0 and not hasattr(gen, "scaled")):
      keys = sorted(cfg) if cfg else ["scale"]
      raise ValueError(f"config fields {', '.join(f'{field}.{k}' for k in keys)}: "
                       "this kind takes no overrides")
    try:
      return gen.scaled(float(scale)) if scale != 1.0 else gen
    except (TypeError, ValueError) as e:
      raise ValueError(f"config field {field}.scale: {e}") from None

  try:
    gen = scaled(gen, float(scale))
  except (TypeError, ValueError) as e:
    raise ValueError(f"config field {field}.scale: {e}") from None
  top: dict[str, Any] = {}
  nested: dict[str, dict[str, Any]] = {"irregular": {}, "box": {}}
  top_fields = ("irregular_prob", "box_prob")
  for key, value in cfg.items():
    head, _, rest = str(key).partition(".")
    if head in nested and rest:
      nested[head][rest] = value
    elif key in nested:
      if value is None:
        continue
      if not (isinstance(value, Mapping) or hasattr(value, "to_dict")):
        raise ValueError(f"config field {field}.{key} must be a mapping of field overrides, "
                         f"got {value!r}")
      nested[key].update(_to_dict(value))
    elif key in top_fields:
      top[key] = value
    else:
      raise ValueError(
          f"config field {field}.{key}: unknown; accepted: kind, scale, "
          f"{', '.join(top_fields)}, "
          f"irregular.<{'|'.join(f.name for f in dataclasses.fields(IrregularMaskParams))}>, "
          f"box.<{'|'.join(f.name for f in dataclasses.fields(BoxMaskParams))}>")
  for part, overrides in nested.items():
    if not overrides:
      continue
    params = getattr(gen, part)
    names = [f.name for f in dataclasses.fields(params)]
    for key in overrides:
      if key not in names:
        raise ValueError(f"config field {field}.{part}.{key}: unknown; accepted: "
                         f"{', '.join(names)}")
    try:
      top[part] = dataclasses.replace(params, **overrides)
    except ValueError as e:
      raise ValueError(f"config field {field}.{e}") from None
  try:
    return dataclasses.replace(gen, **top)
  except ValueError as e:
    raise ValueError(f"config field {field}.{e}") from None
