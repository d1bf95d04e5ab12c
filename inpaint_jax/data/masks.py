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

Drawing. LaMa draws each segment with `cv2.line(thickness=t)`; the sampled segments
and boxes are drawn by `inpaint_jax.data.raster.rasterize`, which reproduces cv2's thick
lines (its docstring says how, and how closely).

Measured against a dev-time copy of the official cv2 code (`masks_bench.py`,
opencv-python-headless 5.0, numpy 2.4):

* Per pixel: see `inpaint_jax.data.raster`.
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

# Also reached as `masks.Segments`, `masks.rasterize`, ... (e.g. by `masks_bench`).
from inpaint_jax.data.raster import Boxes, Segments, rasterize
from inpaint_jax.registry import MASK_GENERATORS

# LaMa writes `2 * 3.1415926 - angle`, not 2 * pi; kept so the segment end points (which
# are truncated to int) come out the same as in the official code.
_LAMA_TWO_PI = 2 * 3.1415926
_SEGMENTS = 5          # LaMa: `for j in range(1 + np.random.randint(5))`
_STROKE_DRAWS = 3 + 3 * _SEGMENTS  # x, y, segment count; angle, length, width per segment
_BOX_DRAWS = 4         # width, height, x, y


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------
def _check_ints(owner: str, params: Any, minimums: Mapping[str, int],
                ordered: Sequence[tuple[str, str]]) -> None:
  """Raises a ValueError naming `owner.field` unless `params`' fields are valid.

  Args:
    owner: the config group, for messages.
    params: the dataclass.
    minimums: field -> smallest value; each must be an int (not a bool).
    ordered: (low, high) field pairs that need low <= high, checked in order.
  """
  for name, minimum in minimums.items():
    value = getattr(params, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
      raise ValueError(f"{owner}.{name} must be an int, got {value!r}")
    if value < minimum:
      raise ValueError(f"{owner}.{name} must be >= {minimum}, got {value}")
  for lo, hi in ordered:
    if getattr(params, hi) < getattr(params, lo):
      raise ValueError(f"{owner}.{hi} ({getattr(params, hi)}) must be >= {owner}.{lo} "
                       f"({getattr(params, lo)})")


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
    _check_ints("irregular", self, {"max_angle": 1, "max_len": 1, "max_width": 1,
                                    "min_times": 0, "max_times": 0},
                [("min_times", "max_times")])

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
    _check_ints("box", self, {"margin": 0, "bbox_min_size": 1, "bbox_max_size": 1,
                              "min_times": 0, "max_times": 0},
                [("bbox_min_size", "bbox_max_size"), ("min_times", "max_times")])

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
# Sampling (primitives are exposed so that tests and the benchmark can see what was drawn)
# ------------------------------------------------------------------------------------------
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


class _SampleBatch:
  """`sample_batch` from `sample_many`, for the two bases below."""

  def sample_batch(self, rng: np.random.Generator, n: int, height: int, width: int, *,
                   out: np.ndarray | None = None) -> np.ndarray:
    """`n` masks, (n, H, W) float32 in {0, 1}, 1 = hole; deterministic in `rng`.

    Mask i equals the i-th of n successive `sample(rng, height, width)` calls.
    `out`: optional (n, H, W) float32 array to fill.
    """
    if n < 0:
      raise ValueError(f"n must be >= 0, got {n}")
    return self.sample_many([rng] * n, height, width, out=out)


class ManyAtOnce(_SampleBatch):
  """Base of a generator that draws masks in batches: it defines `sample_many`.

  `sample` and `sample_batch` are `sample_many` calls, so a mask depends only on its
  generator's draws, however the masks are grouped.
  """

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (H, W) float32 mask in {0, 1}, 1 = hole; equals `sample_batch(rng, 1, ...)[0]`."""
    return self.sample_many([rng], height, width)[0]


class OneAtATime(_SampleBatch):
  """Base of a generator that draws one mask at a time: it defines `sample`.

  `sample_many` and `sample_batch` call `sample` once per mask.
  """

  def sample_many(self, rngs: Sequence[np.random.Generator], height: int, width: int, *,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(len(rngs), H, W) float32, mask i from rngs[i]; written into `out` when given."""
    if out is None:
      out = np.empty((len(rngs), height, width), np.float32)
    for i, rng in enumerate(rngs):
      out[i] = self.sample(rng, height, width)
    return out


@dataclasses.dataclass(frozen=True)
class MixedMaskGenerator(ManyAtOnce):
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


def size_scaler(scale: float) -> Callable[[int, int], int]:
  """`mul(size, minimum)`: a pixel size times `scale`, rounded half up, at least `minimum`.

  For the generators' `scaled` (pixel sizes of masks defined at one resolution, used at
  another).

  Raises:
    ValueError: unless `scale` is a positive finite number.
  """
  if not 0 < scale < float("inf"):
    raise ValueError(f"scale must be a positive number, got {scale!r}")
  return lambda size, minimum: max(minimum, int(size * scale + 0.5))


def scaled(gen: MixedMaskGenerator, scale: float) -> MixedMaskGenerator:
  """The preset with every pixel size times `scale` (rounded half up, at least 1).

  Presets are defined at 256 or 512 px; `scale=0.25` gives the same mask
  shapes for 64 px crops. Counts (strokes, boxes) and angles are unchanged.
  """
  if scale == 1.0:
    return gen
  mul = size_scaler(scale)
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
