"""Training-time image augmentation, selected by name with `data.augment`.

Every augmentation maps one source image, `(H, W, 3)` uint8, and a per-example
`np.random.Generator` to one `(S, S, 3)` uint8 crop, `S = out_size`. The generator is the
example's own stream (see `pipeline.py`), so the output depends only on (seed, example).

Registered names (`AUGMENTATIONS`):

* `none`: a uniformly random S x S crop.
* `flip`: the same crop, then a left-right mirror with probability 1/2.
* `resize_flip_jitter`: DCF's transform: the whole image resized to S x S (PIL bilinear),
  mirrored with probability 1/2, then torchvision's colour jitter (brightness, contrast and
  saturation factors U(0.9, 1.1) in a random order).
* `distortions`: LaMa's training augmentation (its `transform_variant: distortions`,
  built there from albumentations 0.5.2 and imgaug 0.4). In order, with the probability
  that each step is applied:

  1. perspective (p = 0.5): a standard deviation `sigma ~ U(0, 0.06)` is drawn, then for
     each of the four corners an inward offset `|N(0, sigma)| mod 1` along x (as a fraction
     of W) and along y (as a fraction of H). The quadrilateral of the moved corners is
     stretched back onto the whole H x W image (bilinear, edge pixels replicated).
  2. affine (p = 0.5): about the image centre, scale x and scale y each `~ U(0.7, 1.3)`
     (independently), rotation `~ U(-40, 40)` degrees, shear along x and along y each
     `~ U(-0.1, 0.1)` *degrees* (imgaug's unit, so the shear is well below a pixel at
     256 px; kept for fidelity), no translation; output size H x W, bilinear, border
     mirrored without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
  3. pad (always): if H or W is below S, pad to S (BORDER_REFLECT_101), splitting the
     padding as evenly as possible with the odd pixel at the bottom/right.
  4. optical distortion (p = 0.5): radial lens distortion with coefficients
     `k1 = k2 = k ~ U(-0.05, 0.05)`, focal lengths (W, H) pixels, principal point at the
     image centre, bilinear, BORDER_REFLECT_101 (plus OpenCV's half-pixel shift, see
     `optical_distortion`).
  5. crop (always): an S x S window at a uniformly random offset.
  6. flip (p = 0.5): left-right mirror.
  7. CLAHE (p = 0.5): contrast-limited adaptive histogram equalisation of the L channel
     in OpenCV's 8-bit CIELAB, clip limit `~ U(1, 4)`, 8 x 8 tiles.
  8. brightness/contrast (p = 0.5): `v -> trunc(clip(alpha * v + 255 * beta, 0, 255))`
     with `alpha = 1 + U(-0.2, 0.2)`, `beta ~ U(-0.2, 0.2)` (float32 lookup table).
  9. hue/saturation/value (p = 0.5): in OpenCV's 8-bit HSV (hue in [0, 180)), add
     `dh ~ U(-5, 5)` to hue modulo 180, `ds ~ U(-30, 30)` to saturation and
     `dv ~ U(-5, 5)` to value, clipping to [0, 255] and truncating to integers.

  (The pipeline then divides by 255, which is the official chain's final `ToFloat`.)

Deliberate differences from albumentations 0.5.2 / imgaug 0.4, all small:

* Perspective is one bilinear warp of the corner quadrilateral onto the full image. imgaug
  warps onto a canvas the size of the (truncated) quadrilateral and then resizes that back
  to H x W, which resamples twice (softer) and shifts the geometry by under a pixel. The
  corners are not re-sorted either: an offset would have to exceed 0.5, eight standard
  deviations, to move a corner into another quadrant.
* The crop offset is uniform over all `H - S + 1` positions. albumentations computes
  `int((H - S) * U(0, 1))`, which (almost) never picks the last position.
* Optical distortion has no principal-point shift: albumentations draws it in
  `[-0.05, 0.05]` *pixels* and rounds it, so it is always 0 there too.
* Every parameter is drawn whether or not its step is applied, in a fixed order, so the
  stream layout never depends on earlier coin flips (albumentations draws parameters only
  for applied steps, from Python's global `random`).

Images must be RGB uint8; the warps run on OpenCV with one thread (see below).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from PIL import Image

from inpaint_jax.registry import AUGMENTATIONS

# The data pipeline already builds one example per thread; OpenCV's own thread pool on
# top of that only oversubscribes the cores.
cv2.setNumThreads(1)

# Probabilities of the optional steps of `distortions` (albumentations / LaMa defaults).
P_PERSPECTIVE = 0.5
P_AFFINE = 0.5
P_OPTICAL = 0.5
P_FLIP = 0.5
P_CLAHE = 0.5
P_BRIGHTNESS_CONTRAST = 0.5
P_HSV = 0.5

PERSPECTIVE_SIGMA_MAX = 0.06
AFFINE_SCALE = (0.7, 1.3)
AFFINE_ROTATE_DEG = 40.0
AFFINE_SHEAR_DEG = 0.1
OPTICAL_K = 0.05
CLAHE_CLIP = (1.0, 4.0)
CLAHE_TILES = (8, 8)
BRIGHTNESS = 0.2
CONTRAST = 0.2
HUE_SHIFT = 5.0
SAT_SHIFT = 30.0
VAL_SHIFT = 5.0


def _check_rgb_uint8(image: np.ndarray) -> None:
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")


# --- single steps ----------------------------------------------------------------------
def crop(image: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
  """The `size` x `size` window of `image` (H, W, C) whose top-left pixel is (y, x) (a view)."""
  return image[y:y + size, x:x + size]


def random_crop_offset(rng: np.random.Generator, height: int, width: int,
                       size: int) -> tuple[int, int]:
  """(y, x) uniform over all positions of a `size` crop in a height x width image.

  Draws `rng.integers(0, height - size + 1)` then `rng.integers(0, width - size + 1)`.
  """
  y = int(rng.integers(0, height - size + 1))
  x = int(rng.integers(0, width - size + 1))
  return y, x


def hflip(image: np.ndarray) -> np.ndarray:
  """Left-right mirror of an (H, W, C) image (a view)."""
  return image[:, ::-1]


def sample_perspective_offsets(rng: np.random.Generator,
                               sigma_max: float = PERSPECTIVE_SIGMA_MAX) -> np.ndarray:
  """Inward corner offsets for `perspective`, (4, 2) float64 in [0, 1).

  Draws `sigma = rng.uniform(0, sigma_max)`, then `rng.normal(0, sigma, (4, 2))`, and
  returns its absolute value modulo 1 (imgaug's PerspectiveTransform sampling).
  """
  sigma = rng.uniform(0.0, sigma_max)
  return np.abs(rng.normal(0.0, sigma, (4, 2))) % 1.0


def perspective(image: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """Stretches a quadrilateral inside `image` back onto the whole image.

  Args:
    image: (H, W, 3) uint8.
    offsets: (4, 2) inward offsets of the top-left, top-right, bottom-right and
      bottom-left corners, as (fraction of W, fraction of H). All zeros is the identity.

  Returns:
    (H, W, 3) uint8: bilinear, pixels outside the image replicate the nearest edge.
  """
  offsets = np.asarray(offsets, np.float64)
  if not offsets.any():
    return image
  h, w = image.shape[:2]
  (ax, ay), (bx, by), (cx, cy), (dx, dy) = offsets
  # Corner coordinates as imgaug places them: x in [0, W], y in [0, H].
  src = np.float32([[ax * w, ay * h], [(1 - bx) * w, by * h],
                    [(1 - cx) * w, (1 - cy) * h], [dx * w, (1 - dy) * h]])
  dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
  matrix = cv2.getPerspectiveTransform(src, dst)
  return cv2.warpPerspective(np.ascontiguousarray(image), matrix, (w, h),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def affine_matrix(height: int, width: int, scale_x: float, scale_y: float, rotate_deg: float,
                  shear_x_deg: float, shear_y_deg: float) -> np.ndarray:
  """The (2, 3) forward map of `affine`, about the centre of the middle pixel.

  The linear part is imgaug's: first a y-shear `(x, y) -> (cos(sy) x, sin(sy) x + y)`, then
  `[[scale_x cos(r), -scale_y sin(r + sx)], [scale_x sin(r), scale_y cos(r + sx)]]`,
  with r, sx, sy the rotation and shears in radians; pixel coordinates, y down.
  """
  r, sx, sy = np.deg2rad([rotate_deg, shear_x_deg, shear_y_deg])
  shear_y = np.array([[np.cos(sy), 0.0], [np.sin(sy), 1.0]])
  main = np.array([[scale_x * np.cos(r), -scale_y * np.sin(r + sx)],
                   [scale_x * np.sin(r), scale_y * np.cos(r + sx)]])
  linear = main @ shear_y
  centre = np.array([width / 2 - 0.5, height / 2 - 0.5])
  return np.concatenate([linear, (centre - linear @ centre)[:, None]], axis=1)


def affine(image: np.ndarray, scale_x: float = 1.0, scale_y: float = 1.0,
           rotate_deg: float = 0.0, shear_x_deg: float = 0.0,
           shear_y_deg: float = 0.0) -> np.ndarray:
  """Scales, rotates and shears `image` (H, W, 3) uint8 about its centre; see `affine_matrix`.

  Returns:
    (H, W, 3) uint8, bilinear, BORDER_REFLECT_101 outside. The defaults are the identity.
  """
  h, w = image.shape[:2]
  matrix = affine_matrix(h, w, scale_x, scale_y, rotate_deg, shear_x_deg, shear_y_deg)
  if np.array_equal(matrix, np.eye(2, 3)):
    return image
  return cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT_101)


def pad_if_needed(image: np.ndarray, size: int) -> np.ndarray:
  """Pads (H, W, 3) to at least (size, size) with BORDER_REFLECT_101; unchanged if large enough.

  The padding of each axis is split `floor(d / 2)` before and the rest after.
  """
  h, w = image.shape[:2]
  dh, dw = max(0, size - h), max(0, size - w)
  if not dh and not dw:
    return image
  return cv2.copyMakeBorder(np.ascontiguousarray(image), dh // 2, dh - dh // 2, dw // 2,
                            dw - dw // 2, cv2.BORDER_REFLECT_101)


def optical_distortion(image: np.ndarray, k: float) -> np.ndarray:
  """Radial lens distortion of (H, W, 3) uint8 with k1 = k2 = `k`; k = 0 is the identity.

  Output pixel u samples the input where OpenCV's distortion model sends it, for a camera
  with focal lengths (W, H) and principal point (W / 2, H / 2): bilinear,
  BORDER_REFLECT_101 outside. Returns (H, W, 3) uint8. As in albumentations (which calls
  OpenCV the same way), OpenCV centres the undistorted camera on ((W - 1) / 2, (H - 1) / 2),
  so any k != 0 also shifts the image by half a pixel right and down.
  """
  if k == 0:
    return image
  h, w = image.shape[:2]
  camera = np.array([[w, 0, w * 0.5], [0, h, h * 0.5], [0, 0, 1]], np.float32)
  coefficients = np.array([k, k, 0, 0, 0], np.float32)
  map_x, map_y = cv2.initUndistortRectifyMap(camera, coefficients, None, None, (w, h),
                                             cv2.CV_32FC1)
  return cv2.remap(np.ascontiguousarray(image), map_x, map_y, interpolation=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REFLECT_101)


def clahe(image: np.ndarray, clip_limit: float,
          tile_grid: tuple[int, int] = CLAHE_TILES) -> np.ndarray:
  """CLAHE on the L channel of (H, W, 3) RGB uint8 (OpenCV 8-bit LAB); returns the same shape."""
  lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
  equaliser = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tuple(tile_grid))
  lab[..., 0] = equaliser.apply(np.ascontiguousarray(lab[..., 0]))
  return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def brightness_contrast(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
  """`trunc(clip(alpha * v + 255 * beta, 0, 255))` per value of (H, W, 3) uint8.

  alpha = 1, beta = 0 is the identity. The table is float32, as in albumentations.
  """
  table = np.arange(256, dtype=np.float32) * np.float32(alpha) + np.float32(255.0 * beta)
  table = np.clip(table, 0, 255).astype(np.uint8)
  return cv2.LUT(np.ascontiguousarray(image), table)


def shift_hsv(image: np.ndarray, hue: float, saturation: float, value: float) -> np.ndarray:
  """Shifts (H, W, 3) RGB uint8 in OpenCV's 8-bit HSV (hue in [0, 180)).

  hue is added modulo 180, saturation and value are clipped to [0, 255]; all three are then
  truncated to integers. All shifts zero returns the input (the HSV round trip is lossy).
  """
  if hue == 0 and saturation == 0 and value == 0:
    return image
  levels = np.arange(256, dtype=np.float64)
  tables = np.stack([np.mod(levels + hue, 180), np.clip(levels + saturation, 0, 255),
                     np.clip(levels + value, 0, 255)], axis=-1).astype(np.uint8)
  hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
  hsv = cv2.LUT(hsv, tables[:, None, :])  # a 256 x 1 three-channel table: one per channel
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


# --- the distortions chain -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DistortionParams:
  """One draw of the `distortions` chain; a step that is not applied is None (flip False).

  Attributes:
    perspective: (4, 2) corner offsets for `perspective`.
    affine: (scale_x, scale_y, rotate_deg, shear_x_deg, shear_y_deg) for `affine`.
    optical_k: `k` for `optical_distortion`.
    crop: (y, x) of the crop in the padded image.
    flip: mirror the crop.
    clahe_clip: clip limit for `clahe`.
    brightness_contrast: (alpha, beta) for `brightness_contrast`.
    hsv: (hue, saturation, value) shifts for `shift_hsv`.
  """
  perspective: np.ndarray | None
  affine: tuple[float, float, float, float, float] | None
  optical_k: float | None
  crop: tuple[int, int]
  flip: bool
  clahe_clip: float | None
  brightness_contrast: tuple[float, float] | None
  hsv: tuple[float, float, float] | None


def sample_distortions(rng: np.random.Generator, height: int, width: int,
                       out_size: int) -> DistortionParams:
  """Draws the `distortions` parameters for a height x width source and `out_size` crops.

  Each step draws its coin `rng.random() < p` and then all its parameters, applied or not,
  in the module docstring's order; so the number of draws never depends on the coins.
  """
  def coin(p: float) -> bool:
    return bool(rng.random() < p)

  use = coin(P_PERSPECTIVE)
  offsets = sample_perspective_offsets(rng)
  perspective_ = offsets if use else None

  use = coin(P_AFFINE)
  values = (*rng.uniform(*AFFINE_SCALE, 2), rng.uniform(-AFFINE_ROTATE_DEG, AFFINE_ROTATE_DEG),
            *rng.uniform(-AFFINE_SHEAR_DEG, AFFINE_SHEAR_DEG, 2))
  affine_ = tuple(float(v) for v in values) if use else None

  use = coin(P_OPTICAL)
  k = float(rng.uniform(-OPTICAL_K, OPTICAL_K))
  optical_k = k if use else None

  # Perspective and affine keep the size; the pad step may enlarge it.
  crop_ = random_crop_offset(rng, max(height, out_size), max(width, out_size), out_size)
  flip = coin(P_FLIP)

  use = coin(P_CLAHE)
  clip = float(rng.uniform(*CLAHE_CLIP))
  clahe_clip = clip if use else None

  use = coin(P_BRIGHTNESS_CONTRAST)
  alpha = 1.0 + float(rng.uniform(-CONTRAST, CONTRAST))
  beta = float(rng.uniform(-BRIGHTNESS, BRIGHTNESS))
  bc = (alpha, beta) if use else None

  use = coin(P_HSV)
  shifts = (float(rng.uniform(-HUE_SHIFT, HUE_SHIFT)), float(rng.uniform(-SAT_SHIFT, SAT_SHIFT)),
            float(rng.uniform(-VAL_SHIFT, VAL_SHIFT)))
  hsv = shifts if use else None
  return DistortionParams(perspective_, affine_, optical_k, crop_, flip, clahe_clip, bc, hsv)


def apply_distortions(image: np.ndarray, params: DistortionParams, out_size: int) -> np.ndarray:
  """Runs the `distortions` chain with fixed parameters: (H, W, 3) uint8 -> (S, S, 3) uint8."""
  _check_rgb_uint8(image)
  if params.perspective is not None:
    image = perspective(image, params.perspective)
  if params.affine is not None:
    image = affine(image, *params.affine)
  image = pad_if_needed(image, out_size)
  if params.optical_k is not None:
    image = optical_distortion(image, params.optical_k)
  image = crop(image, *params.crop, out_size)
  if params.flip:
    image = hflip(image)
  if params.clahe_clip is not None:
    image = clahe(image, params.clahe_clip)
  if params.brightness_contrast is not None:
    image = brightness_contrast(image, *params.brightness_contrast)
  if params.hsv is not None:
    image = shift_hsv(image, *params.hsv)
  return image


# --- registered augmentations: (image (H, W, 3) uint8, S, rng) -> (S, S, 3) uint8 ------------
@AUGMENTATIONS.register("none")
def crop_only(image: np.ndarray, out_size: int, rng: np.random.Generator) -> np.ndarray:
  """A random crop. Draws the flip coin too (unused), so `none` and `flip` crop alike."""
  return crop_and_flip(image, out_size, rng, allow_flip=False)


@AUGMENTATIONS.register("flip")
def crop_and_flip(image: np.ndarray, out_size: int, rng: np.random.Generator,
                  allow_flip: bool = True) -> np.ndarray:
  """A random crop, mirrored with probability 1/2 (a view of `image`).

  Draws `random_crop_offset`, then the coin `rng.random() < 0.5`.
  """
  h, w = image.shape[:2]
  y, x = random_crop_offset(rng, h, w, out_size)
  flip = bool(rng.random() < P_FLIP) and allow_flip
  out = crop(image, y, x, out_size)
  return hflip(out) if flip else out


@AUGMENTATIONS.register("distortions")
def distort(image: np.ndarray, out_size: int, rng: np.random.Generator) -> np.ndarray:
  """LaMa's `distortions` chain (module docstring): (H, W, 3) uint8 -> (S, S, 3) uint8."""
  params = sample_distortions(rng, image.shape[0], image.shape[1], out_size)
  return apply_distortions(image, params, out_size)


# --- DCF: whole-image resize, flip and colour jitter ------------------------------------------
JITTER = 0.1  # DCF's ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1)


def _gray(image: np.ndarray) -> np.ndarray:
  """PIL's 'L' conversion of RGB uint8: (299 R + 587 G + 114 B) / 1000, rounded."""
  r, g, b = (image[..., i].astype(np.int32) for i in range(3))
  return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _blend(image: np.ndarray, other: np.ndarray | float, factor: float) -> np.ndarray:
  """PIL `ImageEnhance`: other + factor * (image - other), clipped and rounded to uint8."""
  out = other + factor * (image.astype(np.float32) - other)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def color_jitter(image: np.ndarray, rng: np.random.Generator, strength: float = JITTER
                 ) -> np.ndarray:
  """torchvision `ColorJitter(b, c, s)` with b = c = s = strength on RGB uint8.

  Draws a random order of (brightness, contrast, saturation) with `rng.permutation(3)`,
  then the three factors U(1 - strength, 1 + strength) in that fixed order; each step
  blends with black (brightness), the mean grey level (contrast) or the grey image
  (saturation), as PIL's `ImageEnhance`, rounding to uint8 after each step.
  """
  order = rng.permutation(3)
  factors = rng.uniform(1.0 - strength, 1.0 + strength, 3)
  for op in order:
    f = float(factors[op])
    if op == 0:
      image = _blend(image, 0.0, f)
    elif op == 1:
      image = _blend(image, float(np.rint(_gray(image).mean())), f)
    else:
      image = _blend(image, _gray(image)[..., None].astype(np.float32), f)
  return image


@AUGMENTATIONS.register("resize_flip_jitter")
def resize_flip_jitter(image: np.ndarray, out_size: int, rng: np.random.Generator
                       ) -> np.ndarray:
  """DCF's training transform: the whole image resized to S x S (no crop), then flip, jitter.

  PIL bilinear resize (as torchvision's `Resize((S, S))` on PIL images; the aspect ratio
  is not kept), a left-right mirror with probability 1/2 (the coin `rng.random() < 0.5`),
  then `color_jitter` with strength 0.1.
  """
  _check_rgb_uint8(image)
  if image.shape[:2] != (out_size, out_size):
    image = np.asarray(Image.fromarray(image).resize((out_size, out_size), Image.BILINEAR))
  if bool(rng.random() < P_FLIP):
    image = hflip(image)
  return np.ascontiguousarray(color_jitter(image, rng))
