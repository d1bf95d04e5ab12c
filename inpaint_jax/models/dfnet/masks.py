"""DFNet's training masks: its free-form stroke generator and its mask-folder augmentation.

Both return the project's convention, (H, W) float32 with 1 = hole (DFNet's own files
are white = known).

`dfnet_free_form`: the stroke generator DFNet's authors used to make their mask set
(all lengths relative to the mask size, so it draws at the requested size directly):

* 10..40 vertices (uniform integer) and 1..5 strokes; each stroke gets
  `vertices // strokes` segments and starts at a uniform point of the central half
  ([0.25, 0.75]^2 of the image);
* per segment the heading becomes `pi - heading + U(-0.75 pi, 0.75 pi)`, mirrored to
  `2 pi - heading` on even segment indices; the length is U(0.1, 0.3) of the side, the
  end point (x + len cos, y + len sin) is clipped to the image and starts the next
  segment; points become pixels by truncation (`int(x * W)`);
* segments are drawn as cv2-style thick lines of width `int(0.02 * min(H, W))`
  (10 px at 512; at least 1), with the rasteriser of `inpaint_jax.data.raster`;
* a mask is kept only if its hole fraction lies in [min_area, max_area) = [0.1, 0.2),
  otherwise it is drawn again (the authors' script loops the same way). We stop after
  `max_tries` draws and return the last one, so a call always ends.

The authors generated 512 x 512 files once and then resized them to the training
size; drawing at the training size directly gives the same shapes without a file set.

`dfnet_folder`: a folder of mask images (PNG/JPG, white = known, as DFNet's
`free-form-mask` archive), one chosen uniformly per example and augmented as DFNet's
training code does: resize to (H, W), horizontal flip with probability 1/2, then a
random affine transform (rotation U(-20, 20) degrees, scale U(0.5, 2), translation up to
0.2 of the size on each axis, x-shear U(-20, 20) degrees) whose uncovered area is filled
with "known". We sample the transformed mask with nearest neighbour (as torchvision's
default) and binarise at 0.5, so holes are exactly 0/1 (the official code keeps the
fractional edge values of the bilinear resize).

Both are deterministic in the `rng` they are given (the pipeline seeds one per example).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib

import cv2
import numpy as np
from PIL import Image

from inpaint_jax.data import augment
from inpaint_jax.data.masks import OneAtATime
from inpaint_jax.data.raster import Segments, rasterize
from inpaint_jax.registry import MASK_GENERATORS

_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class DFNetFreeFormMasks(OneAtATime):
  """DFNet's free-form stroke masks (see the module docstring).

  Attributes:
    min_vertex, max_vertex: vertex count range (inclusive).
    max_strokes: strokes are 1..max_strokes.
    start_area: strokes start in the central `start_area` fraction of each axis.
    min_len, max_len: segment length range, fraction of the side.
    max_angle: the heading changes by U(-max_angle, max_angle) radians.
    brush: brush width as a fraction of the shorter side.
    min_area, max_area: accepted hole fraction [min_area, max_area).
    max_tries: draws before giving up on the area range.
  """

  min_vertex: int = 10
  max_vertex: int = 40
  max_strokes: int = 5
  start_area: float = 0.5
  min_len: float = 0.1
  max_len: float = 0.3
  max_angle: float = 0.75 * math.pi
  brush: float = 0.02
  min_area: float = 0.1
  max_area: float = 0.2
  max_tries: int = 100

  accepts_overrides = True  # `masks.build` passes the config's fields to the constructor

  def __post_init__(self):
    if not 1 <= self.min_vertex <= self.max_vertex or self.max_strokes < 1:
      raise ValueError(f"dfnet_free_form: need 1 <= min_vertex <= max_vertex and "
                       f"max_strokes >= 1, got {self.min_vertex}, {self.max_vertex}, "
                       f"{self.max_strokes}")
    if not 0 <= self.min_area < self.max_area <= 1:
      raise ValueError(f"dfnet_free_form: need 0 <= min_area < max_area <= 1, got "
                       f"{self.min_area}, {self.max_area}")

  def _draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    n_vertex = int(rng.integers(self.min_vertex, self.max_vertex + 1))
    strokes = int(rng.integers(1, self.max_strokes + 1))
    lo = self.start_area / 2
    pts = []
    for _ in range(strokes):
      heading = 0.0
      x, y = rng.uniform(lo, 1 - lo, 2)
      for j in range(n_vertex // strokes):
        heading = math.pi - heading + rng.uniform(-self.max_angle, self.max_angle)
        if j % 2 == 0:
          heading = 2 * math.pi - heading
        length = rng.uniform(self.min_len, self.max_len)
        nx = min(max(x + length * math.cos(heading), 0.0), 1.0)
        ny = min(max(y + length * math.sin(heading), 0.0), 1.0)
        pts.append((int(x * width), int(y * height), int(nx * width), int(ny * height)))
        x, y = nx, ny
    seg = np.asarray(pts, np.int64).reshape(-1, 4)
    k = seg.shape[0]
    thickness = max(1, int(self.brush * min(height, width)))
    segments = Segments(
        mask=np.zeros(k, np.int64), x0=seg[:, 0], y0=seg[:, 1], x1=seg[:, 2], y1=seg[:, 3],
        thickness=np.full(k, thickness, np.int64), strokes_per_mask=np.array([strokes]),
        segments_per_stroke=np.full(strokes, n_vertex // strokes, np.int64))
    return rasterize(1, height, width, segments)[0]

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (H, W) float32 mask in {0, 1}, 1 = hole, area in [min_area, max_area) if found."""
    if height <= 0 or width <= 0:
      raise ValueError(f"mask size must be positive, got {height}x{width}")
    mask = None
    for _ in range(self.max_tries):
      mask = self._draw(rng, height, width)
      if self.min_area <= float(mask.mean()) < self.max_area:
        break
    return mask


@functools.lru_cache(maxsize=4096)
def _load_known(path: str) -> np.ndarray:
  """A mask file as (h, w) uint8, 255 = known (DFNet's files: white = keep)."""
  with Image.open(path) as im:
    return np.asarray(im.convert("L"), np.uint8)


@dataclasses.dataclass(frozen=True)
class DFNetFolderMasks(OneAtATime):
  """Mask files from a folder with DFNet's training augmentation (module docstring).

  Attributes:
    folder: directory searched recursively for .png / .jpg / .jpeg files.
    flip: random horizontal flip.
    degrees, zoom, translate, shear: the RandomAffine ranges (zoom = its `scale`).
  """

  folder: str = ""
  flip: bool = True
  degrees: float = 20.0
  zoom: tuple[float, float] = (0.5, 2.0)
  translate: float = 0.2
  shear: float = 20.0

  accepts_overrides = True

  def __post_init__(self):
    if not self.folder:
      raise ValueError("dfnet_folder masks need masks.folder (a directory of mask images, "
                       "white = known)")
    if not self.files:
      raise ValueError(f"masks.folder={self.folder!r}: no .png/.jpg/.jpeg files found")

  @functools.cached_property
  def files(self) -> tuple[str, ...]:
    root = pathlib.Path(self.folder)
    if not root.is_dir():
      raise ValueError(f"masks.folder={self.folder!r} is not a directory")
    return tuple(sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in _EXTENSIONS))

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (H, W) float32 mask in {0, 1}, 1 = hole."""
    path = self.files[int(rng.integers(len(self.files)))]
    known = cv2.resize(_load_known(path), (width, height), interpolation=cv2.INTER_LINEAR)
    u = rng.random(6)
    if self.flip and u[0] < 0.5:
      known = known[:, ::-1]
    angle = self.degrees * (2 * u[1] - 1)
    s = self.zoom[0] + (self.zoom[1] - self.zoom[0]) * u[2]
    tx = round(self.translate * width * (2 * u[3] - 1))
    ty = round(self.translate * height * (2 * u[4] - 1))
    shear = self.shear * (2 * u[5] - 1)
    matrix = augment.affine_matrix(height, width, s, s, angle, shear, 0.0)
    matrix[:, 2] += (tx, ty)
    known = cv2.warpAffine(np.ascontiguousarray(known), matrix, (width, height),
                           flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=255)
    return (known < 128).astype(np.float32)


MASK_GENERATORS.register("dfnet_free_form")(DFNetFreeFormMasks)
MASK_GENERATORS.register("dfnet_folder")(DFNetFolderMasks)
