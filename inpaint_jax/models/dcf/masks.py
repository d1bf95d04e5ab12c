"""DCF's training masks: random-walk strokes of a round brush (`dcf_random_walk`).

As the official `InpaintingDataset.generate_mask` draws them (all sizes in pixels),
returned in the project's convention, (H, W) float32 with 1 = hole:

* a target hole ratio r ~ U(min_ratio, max_ratio) = U(0.05, 0.15), target area
  int(r * H * W);
* 3..8 strokes (uniform integer); a stroke is skipped once the hole area reaches the
  target. The area is checked only between strokes, so the real ratio overshoots;
* each stroke starts at a uniform pixel, takes randint(20, min(H, W) // 2) steps (at
  least 20: the official code fails below 40 px) with a brush radius randint(8, 20);
  at every step the disc dx^2 + dy^2 <= radius^2 around the current point is painted,
  then the point moves by `radius` in a uniform direction, truncated to an integer
  and clipped to the image. A stroke's discs are drawn together by
  `inpaint_jax.data.raster.rasterize` (as segments of length 0).

The official code draws from Python's `random` per example; we draw the same
distribution from the numpy generator the pipeline seeds per example, so masks are
reproducible but not the official ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from inpaint_jax.data.masks import OneAtATime
from inpaint_jax.data.raster import Segments, rasterize
from inpaint_jax.registry import MASK_GENERATORS


@dataclasses.dataclass(frozen=True)
class DCFRandomWalkMasks(OneAtATime):
  """DCF's random-walk stroke masks (see the module docstring).

  Attributes:
    min_ratio, max_ratio: range of the target hole ratio.
    min_strokes, max_strokes: stroke count range (inclusive).
    min_steps: the fewest random-walk steps; the most is min(H, W) // 2.
    min_radius, max_radius: brush radius range in pixels (inclusive).
  """

  min_ratio: float = 0.05
  max_ratio: float = 0.15
  min_strokes: int = 3
  max_strokes: int = 8
  min_steps: int = 20
  min_radius: int = 8
  max_radius: int = 20

  accepts_overrides = True  # `masks.build` passes the config's fields to the constructor

  def __post_init__(self):
    if not 0 <= self.min_ratio <= self.max_ratio <= 1:
      raise ValueError(f"dcf_random_walk: need 0 <= min_ratio <= max_ratio <= 1, got "
                       f"{self.min_ratio}, {self.max_ratio}")
    if not 1 <= self.min_strokes <= self.max_strokes or \
        not 0 <= self.min_radius <= self.max_radius or self.min_steps < 1:
      raise ValueError("dcf_random_walk: need 1 <= min_strokes <= max_strokes, "
                       "0 <= min_radius <= max_radius and min_steps >= 1")

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (H, W) float32 mask in {0, 1}, 1 = hole."""
    if height <= 0 or width <= 0:
      raise ValueError(f"mask size must be positive, got {height}x{width}")
    mask = np.zeros((height, width), np.float32)
    target = int(rng.uniform(self.min_ratio, self.max_ratio) * height * width)
    strokes = int(rng.integers(self.min_strokes, self.max_strokes + 1))
    for _ in range(strokes):
      if int(mask.sum()) >= target:
        break
      x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
      steps = int(rng.integers(self.min_steps, max(self.min_steps, min(height, width) // 2) + 1))
      radius = int(rng.integers(self.min_radius, self.max_radius + 1))
      centres = np.empty((steps, 2), np.int64)
      for i in range(steps):
        centres[i] = x, y
        angle = rng.uniform(0.0, 2.0 * np.pi)
        x = int(np.clip(x + radius * np.cos(angle), 0, width - 1))
        y = int(np.clip(y + radius * np.sin(angle), 0, height - 1))
      # A segment of length 0 and cv2 thickness 2r is the disc dx^2 + dy^2 <= r^2.
      discs = Segments(
          mask=np.zeros(steps, np.int64), x0=centres[:, 0], y0=centres[:, 1],
          x1=centres[:, 0], y1=centres[:, 1], thickness=np.full(steps, 2 * radius, np.int64),
          strokes_per_mask=np.array([1]), segments_per_stroke=np.array([steps]))
      np.maximum(mask, rasterize(1, height, width, discs)[0], out=mask)
    return mask


MASK_GENERATORS.register("dcf_random_walk")(DCFRandomWalkMasks)
