"""Classical inpainting pseudo-models for the evaluation tables: no training, no weights.

* `opencv_telea`: OpenCV's fast marching method (Telea 2004), `cv2.INPAINT_TELEA`.
* `opencv_ns`: OpenCV's Navier-Stokes method (Bertalmio et al. 2001), `cv2.INPAINT_NS`.
* `mean_fill`: every hole pixel gets the mean colour of the image's known pixels.

The OpenCV ones use `opencv-python-headless` (a dependency of the package); where it is
missing they raise a one-line error that says so. All keep known pixels (a composite),
work on 8-bit images as OpenCV does, and return float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

INPAINT_RADIUS = 3   # neighbourhood radius in pixels; OpenCV's documentation example uses 3

# (H, W, 3) float image in [0, 1], (H, W) mask (1 = hole) -> (H, W, 3) float32 in [0, 1].
Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _to_u8(image: np.ndarray) -> np.ndarray:
  return np.clip(np.round(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)


def _opencv(flag_name: str) -> Baseline:
  def run(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise RuntimeError("the OpenCV baselines need opencv-python-headless "
                         "(pip install opencv-python-headless)") from None
    hole = (np.asarray(mask) > 0.5).astype(np.uint8)
    out = cv2.inpaint(_to_u8(image), hole, INPAINT_RADIUS, getattr(cv2, flag_name))
    return out.astype(np.float32) / 255.0
  return run


def mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Fills the holes with the mean colour of the known pixels (grey if there are none)."""
  image = np.asarray(image, np.float32)
  hole = np.asarray(mask) > 0.5
  known = image[~hole]
  colour = known.mean(axis=0) if known.size else np.full(image.shape[-1], 0.5, np.float32)
  out = image.copy()
  out[hole] = colour
  return out


BASELINES: dict[str, Baseline] = {
    "opencv_telea": _opencv("INPAINT_TELEA"),
    "opencv_ns": _opencv("INPAINT_NS"),
    "mean_fill": mean_fill,
}


def get(name: str, field: str = "--baseline") -> Baseline:
  if name not in BASELINES:
    raise ValueError(f"{field}: unknown baseline {name!r}; accepted: {', '.join(BASELINES)}")
  return BASELINES[name]


def run_batch(name: str, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """(B, H, W, 3) float images and (B, H, W) masks -> (B, H, W, 3) float32 results."""
  fn = get(name)
  masks = np.asarray(masks).reshape(images.shape[:3])
  return np.stack([fn(img, m) for img, m in zip(images, masks, strict=True)])
