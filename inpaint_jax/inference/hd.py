"""High-resolution strategies (IOPaint's "HD strategy"): original, resize, crop.

Each takes the full-size image (H, W, 3) and mask (H, W, 1) in {0, 1} and an `infer`
function (the family's pad -> forward -> composite -> crop at whatever size it is given) and
returns the composite (H, W, 3) at full size. Known pixels (mask 0) are always the input
pixels, bit for bit.

  original  one pass at full size.
  resize    when max(H, W) > trigger: inpaint a copy whose longer side is `resize_limit`,
            upscale the result (bicubic) and take only its hole pixels.
  crop      when max(H, W) > trigger: one pass per connected mask component, on its bounding
            box grown by `crop_margin` on every side (clipped to the image), pasted back at the
            component's hole pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np

STRATEGIES = ("original", "resize", "crop")
InferFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class HDConfig:
  """IOPaint's defaults: trigger 800 px, resize limit 1280 px, crop margin 128 px."""

  strategy: str = "original"
  trigger_size: int = 800
  resize_limit: int = 1280
  crop_margin: int = 128

  def __post_init__(self):
    if self.strategy not in STRATEGIES:
      raise ValueError(f"--hd-strategy {self.strategy}: accepted: {', '.join(STRATEGIES)}")
    for name in ("trigger_size", "resize_limit"):
      if getattr(self, name) < 8:
        raise ValueError(f"--hd-{name.replace('_', '-')} {getattr(self, name)}: must be >= 8")
    if self.crop_margin < 0:
      raise ValueError(f"--hd-crop-margin {self.crop_margin}: must be >= 0")


def _paste(image: np.ndarray, mask: np.ndarray, filled: np.ndarray) -> np.ndarray:
  return np.where(mask > 0, filled, image).astype(np.float32)


def resize_strategy(image: np.ndarray, mask: np.ndarray, infer: InferFn,
                    resize_limit: int) -> np.ndarray:
  h, w = image.shape[:2]
  scale = resize_limit / max(h, w)
  if scale >= 1:
    return infer(image, mask)
  sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
  small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
  # Area-averaged mask, any overlap = hole: the small hole covers the whole large one.
  small_mask = (cv2.resize(mask[..., 0], (sw, sh), interpolation=cv2.INTER_AREA) > 0)
  out = infer(small, small_mask.astype(np.float32)[..., None])
  big = np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
  return _paste(image, mask, big)


def mask_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
  """(x, y, w, h) of each 8-connected hole component."""
  n, _, stats, _ = cv2.connectedComponentsWithStats((mask[..., 0] > 0).astype(np.uint8), 8)
  return [tuple(int(v) for v in stats[i, :4]) for i in range(1, n)]


def crop_strategy(image: np.ndarray, mask: np.ndarray, infer: InferFn,
                  margin: int) -> np.ndarray:
  h, w = image.shape[:2]
  out = np.array(image, np.float32)
  for x, y, bw, bh in mask_boxes(mask):
    t, b = max(0, y - margin), min(h, y + bh + margin)
    left, r = max(0, x - margin), min(w, x + bw + margin)
    crop_mask = mask[t:b, left:r]
    # Holes of other components inside the box are filled too, and overwritten by their own
    # pass later; known pixels come from the input image either way.
    filled = infer(image[t:b, left:r], crop_mask)
    out[t:b, left:r] = _paste(out[t:b, left:r], crop_mask, filled)
  return _paste(image, mask, out)


def inpaint_hd(image: np.ndarray, mask: np.ndarray, infer: InferFn, hd: HDConfig) -> np.ndarray:
  """Applies `hd.strategy` (original below the trigger size)."""
  if not np.any(mask):
    return np.asarray(image, np.float32)
  if hd.strategy == "original" or max(image.shape[:2]) <= hd.trigger_size:
    return infer(image, mask)
  if hd.strategy == "resize":
    return resize_strategy(image, mask, infer, hd.resize_limit)
  return crop_strategy(image, mask, infer, hd.crop_margin)
