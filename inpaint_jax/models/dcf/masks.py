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
  and clipped to the image.

The official code draws from Python's `random` per example; we draw the same
distribution from the numpy generator the pipeline seeds per example, so masks are
reproducible but not the official ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from inpaint_jax.registry import MASK_GENERATORS


@dataclasses.dataclass(frozen=True)
class DCFRandomWalkMasks:
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
    mask = np.zeros((height, width), bool)
    target = int(rng.uniform(self.min_ratio, self.max_ratio) * height * width)
    strokes = int(rng.integers(self.min_strokes, self.max_strokes + 1))
    ys, xs = np.ogrid[:height, :width]
    for _ in range(strokes):
      if int(mask.sum()) >= target:
        break
      x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
      steps = int(rng.integers(self.min_steps, max(self.min_steps, min(height, width) // 2) + 1))
      radius = int(rng.integers(self.min_radius, self.max_radius + 1))
      for _ in range(steps):
        mask |= (ys - y) ** 2 + (xs - x) ** 2 <= radius * radius
        angle = rng.uniform(0.0, 2.0 * np.pi)
        x = int(np.clip(x + radius * np.cos(angle), 0, width - 1))
        y = int(np.clip(y + radius * np.sin(angle), 0, height - 1))
    return mask.astype(np.float32)

  def sample_batch(self, rng: np.random.Generator, n: int, height: int,
                   width: int) -> np.ndarray:
    return np.stack([self.sample(rng, height, width) for _ in range(n)]) if n else \
        np.zeros((0, height, width), np.float32)

  def sample_many(self, rngs, height: int, width: int, *,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(len(rngs), H, W) float32, mask i from rngs[i]; written into `out` when given."""
    if out is None:
      out = np.empty((len(rngs), height, width), np.float32)
    for i, r in enumerate(rngs):
      out[i] = self.sample(r, height, width)
    return out


MASK_GENERATORS.register("dcf_random_walk")(DCFRandomWalkMasks)
