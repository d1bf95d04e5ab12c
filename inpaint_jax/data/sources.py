"""Random-access image sources: embedded sample photos, a folder tree, or a TFDS dataset.

A source is a sequence of RGB photos: `len(source)` records, and `source[i]` is an
`(H, W, 3)` uint8 array (grayscale is repeated to three channels; alpha is composited
over white). Sources never crop: the pipeline (`pipeline.py`) takes random
`image_size` crops, and decides which record each global example reads.

Sources are built by name from the `data` section of the config with `build_source`:

  source        "embedded" (default) | "folder" | "tfds"
  embedded_split  embedded source: "train" | "held_out" | "all" (default "all"): the
                photos `EMBEDDED_HELD_OUT` are kept for evaluation, the others train. The
                family configs train on "train"; evaluation reads "held_out" (see
                `inpaint_jax.evaluation.runner`), so no score comes from a trained-on photo.
  small_images  "error" (default) | "skip" | "resize": what to do with an image whose
                shorter side is smaller than the crop (see `ImageSource.require_min_size`).
  shorter_side  0 (default): images as stored; N: every image resized (bicubic, aspect
                kept) so that its shorter side is N, before augmentation and cropping
                (`ImageSource.resize_shorter`), after the small-image policy (which
                still judges the stored size against the crop). Sets the scale of the
                training crops: LaMa crops 256 px from Places photos of about 512 px.
  folder        folder source: root of a folder tree of JPEG/PNG files (no default).
  tfds_name     tfds source: dataset name, e.g. "places365_small" (no default).
  tfds_split    tfds source: split, default "train" (slices such as "train[:28000]" work).
  tfds_data_dir tfds source: TFDS data folder, default "" (TFDS's own default).
  tfds_image_key  tfds source: the feature holding the image, default "image".

Robustness (a long training run must not die on one bad file): the folder source scans
only the headers at build time (cheap) to drop unreadable files and learn the sizes; a
record that still fails to decode later is replaced by the next record (deterministic,
so every process makes the same replacement) and counted in `source.stats`.
"""

from __future__ import annotations

import abc
import collections
import concurrent.futures
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from inpaint_jax.registry import DATA_SOURCES

SMALL_IMAGE_POLICIES = ("error", "skip", "resize")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

# The true RGB photographs that scikit-image ships inside its wheel (so no download is
# ever needed), with their sizes as width x height. Left out on purpose: grayscale photos
# (camera, coins, moon, brick, grass, gravel, ...), synthetic or graphic images (color,
# chessboard_RGB, phantom, logo, horse) and files that need a fetch.
EMBEDDED_PHOTOS: dict[str, tuple[int, int]] = {
    "astronaut.png": (512, 512),
    "chelsea.png": (451, 300),
    "coffee.png": (600, 400),
    "rocket.jpg": (640, 427),
    "motorcycle_left.png": (741, 500),
    "motorcycle_right.png": (741, 500),
    "hubble_deep_field.jpg": (1000, 872),
    "retina.jpg": (1411, 1411),
    "ihc.png": (512, 512),
}

# Held out from training: the three everyday photographs (a cat, a cup of coffee, a rocket
# on its pad). The other six train; the two motorcycle photos are a stereo pair of one
# scene and stay on one side together.
EMBEDDED_HELD_OUT = ("chelsea.png", "coffee.png", "rocket.jpg")
EMBEDDED_SPLITS = ("train", "held_out", "all")

# What PIL (and TFDS decoders) raise on a broken file. SyntaxError: some broken PNG
# chunks; EOFError: truncated GIF/PNG frames.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

# Sources of up to this many records keep their resized images (`data.shorter_side`).
_MAX_RESIZED_CACHE = 4096

# Give up after this many consecutive undecodable records: by then the data, not a file,
# is broken, and silently training on a handful of survivors would be worse.
_MAX_CONSECUTIVE_FAILURES = 1000


def _accepted_policies() -> str:
  return ", ".join(repr(p) for p in SMALL_IMAGE_POLICIES)


def _check_policy(policy: str) -> str:
  if policy not in SMALL_IMAGE_POLICIES:
    raise ValueError(
        f"config field data.small_images: unknown value {policy!r}; accepted: "
        f"{_accepted_policies()}")
  return policy


def to_rgb_uint8(image: Image.Image | np.ndarray, *, what: str = "image") -> np.ndarray:
  """Converts a PIL image or an array to an RGB uint8 array.

  Args:
    image: a PIL image of any mode, or an array (H, W), (H, W, 1), (H, W, 3) or
      (H, W, 4), uint8 or uint16.
    what: names the image in errors.

  Returns:
    (H, W, 3) uint8. Grayscale is repeated to 3 channels, alpha is composited over white
    (the RGB under fully transparent pixels is often garbage), 16-bit is scaled to 8-bit.
  """
  if isinstance(image, Image.Image):
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
      # 16-bit grayscale PNG: `convert("RGB")` would clip, so scale instead.
      image = np.asarray(image)
    elif image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
      rgba = image.convert("RGBA")
      white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
      return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    else:
      return np.asarray(image.convert("RGB"))
  arr = np.asarray(image)
  if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.dtype != np.uint8):
    arr = np.clip(np.round(arr.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)
  if arr.dtype != np.uint8:
    raise ValueError(f"{what}: expected uint8 or uint16 pixels, got {arr.dtype}")
  if arr.ndim == 2:
    arr = arr[:, :, None]
  if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
    raise ValueError(f"{what}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, "
                     f"got shape {arr.shape}")
  if arr.shape[-1] == 1:
    return np.repeat(arr, 3, axis=-1)
  if arr.shape[-1] == 4:
    alpha = arr[..., 3:].astype(np.float32) / 255.0
    rgb = arr[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
  return np.ascontiguousarray(arr)


def upscale_to_min_side(image: np.ndarray, min_size: int) -> np.ndarray:
  """Bicubic resize of (H, W, 3) uint8 so that min(H, W) == min_size (aspect kept).

  Up (the "resize" small-image policy) or down (`data.shorter_side`).
  """
  h, w = image.shape[:2]
  scale = min_size / min(h, w)
  # Round up so that neither side ends a pixel short of the crop.
  new_h, new_w = max(min_size, int(np.ceil(h * scale))), max(min_size, int(np.ceil(w * scale)))
  resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
  return np.asarray(resized)


class ImageSource(abc.ABC):
  """A random-access sequence of RGB photos: `source[i]` -> (H, W, 3) uint8.

  Subclasses provide the underlying records (`_num_records`, `_read`, `_describe`, and,
  when known without decoding, `_size`). This class adds the small-image policy, a
  filtered view for the "skip" policy, and deterministic replacement of records that
  fail to decode. Reading is thread-safe (the pipeline decodes on a thread pool).

  Attributes:
    stats: counters, e.g. "unreadable_at_scan", "ignored_non_image_files",
      "decode_failures", "small_skipped", "small_resized".
    min_size: the crop size set by `require_min_size`, or None.
  """

  #: The config field that names this source in error messages.
  field: str = "data.source"

  def __init__(self, *, small_images: str = "error"):
    self.small_images = _check_policy(small_images)
    self.min_size: int | None = None
    self.stats: collections.Counter[str] = collections.Counter()
    self.failed_records: set[int] = set()
    self._lock = threading.Lock()
    # Public index -> underlying record; None means the identity (nothing skipped).
    self._index: np.ndarray | None = None
    self.shorter_side = 0
    self._resized: dict[int, np.ndarray] = {}

  # --- to implement -----------------------------------------------------------------
  @abc.abstractmethod
  def _num_records(self) -> int:
    """Number of underlying records (before any "skip" filtering)."""

  @abc.abstractmethod
  def _read(self, record: int) -> np.ndarray:
    """Decodes underlying record `record` to (H, W, 3) uint8; may raise a decode error."""

  @abc.abstractmethod
  def _describe(self, record: int) -> str:
    """Names underlying record `record` for messages (a path, or dataset[split][i])."""

  def _size(self, record: int) -> tuple[int, int] | None:
    """(height, width) of an underlying record if known without decoding, else None."""
    del record
    return None

  # --- public API -------------------------------------------------------------------
  def __len__(self) -> int:
    return self._num_records() if self._index is None else len(self._index)

  def record_of(self, index: int) -> int:
    """The underlying record that public index `index` reads."""
    return index if self._index is None else int(self._index[index])

  def describe(self, index: int) -> str:
    return self._describe(self.record_of(index))

  def __getitem__(self, index: int) -> np.ndarray:
    """Returns image `index` as (H, W, 3) uint8.

    A record that fails to decode (or, for a source whose sizes are unknown before
    decoding, is too small under the "skip" policy) is replaced by the next one, so the
    result depends only on `index`.
    """
    n = len(self)
    index = int(index)
    if not 0 <= index < n:
      raise IndexError(f"image index {index} out of range for a source of {n} images")
    for k in range(min(n, _MAX_CONSECUTIVE_FAILURES)):
      record = self.record_of((index + k) % n)
      try:
        image = self._read(record)
      except _DECODE_ERRORS as e:
        with self._lock:
          self.stats["decode_failures"] += 1
          self.failed_records.add(record)
        logging.log_every_n(
            logging.WARNING, "%s: cannot decode %s (%s: %s); using the next image instead. "
            "(Logged every 100th time; see source.stats.)", 100, self.field,
            self._describe(record), type(e).__name__, e)
        continue
      image = self._fit(record, image)
      if image is not None:
        return self._rescale(record, image)
    raise RuntimeError(
        f"{self.field}: {min(n, _MAX_CONSECUTIVE_FAILURES)} consecutive images from index "
        f"{index} could not be used (undecodable or too small); the data looks broken. "
        f"Counts: {dict(self.stats)}")

  def resize_shorter(self, side: int) -> ImageSource:
    """From now on every image is resized (bicubic) so that its shorter side is `side`.

    0 switches it off. The resized images of sources of up to `_MAX_RESIZED_CACHE` records
    are kept in memory (small at crop scale; the resize of a large photo costs more than
    the rest of its example's pipeline).

    Returns:
      self, for chaining.
    """
    side = int(side)
    if side < 0:
      raise ValueError(f"config field data.shorter_side={side}: must be 0 (images as stored) "
                       "or a positive number of pixels")
    self.shorter_side = side
    self._resized = {}
    return self

  def _rescale(self, record: int, image: np.ndarray) -> np.ndarray:
    if not self.shorter_side or min(image.shape[:2]) == self.shorter_side:
      return image
    cached = self._resized.get(record)
    if cached is not None:
      return cached
    out = upscale_to_min_side(image, self.shorter_side)
    if self._num_records() <= _MAX_RESIZED_CACHE:
      out.setflags(write=False)  # shared between calls: nobody may edit it in place
      with self._lock:
        self._resized[record] = out
    return out

  def require_min_size(self, min_size: int) -> ImageSource:
    """Applies the `data.small_images` policy for crops of `min_size` x `min_size`.

    Where sizes are known up front (folder, embedded) this acts now: "error" raises for
    the first small image, "skip" drops all small images from the index. Otherwise the
    policy applies as each record is decoded ("skip" then means "replace by the next
    record"). "resize" always acts at decode time (bicubic upscale of the shorter side to
    `min_size`). Calling it again with another size recomputes from all records.

    Returns:
      self, for chaining.

    Raises:
      ValueError: policy "error" and an image is too small (naming the file, its size,
        the crop size and the options); or policy "skip" and no image is large enough.
    """
    min_size = int(min_size)
    if min_size <= 0:
      raise ValueError(f"image_size must be positive, got {min_size}")
    if self.shorter_side and self.shorter_side < min_size:
      raise ValueError(f"config field data.shorter_side={self.shorter_side}: smaller than the "
                       f"{min_size}x{min_size} crop (data.image_size); accepted: 0 or at least "
                       f"{min_size}")
    self.min_size = min_size
    self._index = None
    if self._num_records() == 0 or self._size(0) is None:
      return self  # Sizes unknown before decoding: `_fit` applies the policy per record.
    sizes = [self._size(r) for r in range(self._num_records())]
    small = [r for r, (h, w) in enumerate(sizes) if min(h, w) < min_size]
    if not small or self.small_images == "resize":
      return self
    if self.small_images == "error":
      h, w = sizes[small[0]]
      raise ValueError(self._small_message(small[0], h, w, count=len(small), total=len(sizes)))
    keep = np.setdiff1d(np.arange(len(sizes)), np.asarray(small))
    if keep.size == 0:
      raise ValueError(
          f"{self.field}: all {len(sizes)} images are smaller than the {min_size}x{min_size} "
          f"crop (image_size={min_size}) and data.small_images='skip' dropped them all; use "
          f"data.small_images='resize' or a smaller image_size")
    self._index = keep
    self.stats["small_skipped"] = len(small)
    logging.warning("%s: skipped %d of %d images smaller than the %dx%d crop "
                    "(data.small_images='skip')", self.field, len(small), len(sizes), min_size,
                    min_size)
    return self

  # --- helpers ----------------------------------------------------------------------
  def _small_message(self, record: int, h: int, w: int, *, count: int | None = None,
                     total: int | None = None) -> str:
    s = self.min_size
    how_many = f" ({count} of {total} images are smaller)" if count is not None else ""
    return (f"{self.field}: image {self._describe(record)} is {w}x{h} pixels (width x height), "
            f"smaller than the {s}x{s} crop (image_size={s}){how_many}. Options: "
            f"data.small_images='skip' drops such images, 'resize' upscales them so the "
            f"shorter side is {s} (default 'error' stops here); or lower image_size.")

  def _fit(self, record: int, image: np.ndarray) -> np.ndarray | None:
    """Applies the small-image policy to a decoded image; None means "use the next"."""
    if self.min_size is None:
      return image
    h, w = image.shape[:2]
    if min(h, w) >= self.min_size:
      return image
    if self.small_images == "resize":
      with self._lock:
        self.stats["small_resized"] += 1
      return upscale_to_min_side(image, self.min_size)
    if self.small_images == "skip":
      with self._lock:
        self.stats["small_skipped"] += 1
      return None
    raise ValueError(self._small_message(record, h, w))


class FileImageSource(ImageSource):
  """Images stored as files, with sizes known from their headers.

  Args:
    paths: image files, in the order that defines the record indices.
    sizes: (height, width) of each file, from its header.
    field: the config field naming this source in messages.
    small_images: the small-image policy.
    cache: keep decoded images in memory (for a few small files, e.g. the embedded
      photos, where decoding the same image over and over would dominate).
  """

  def __init__(self, paths: Sequence[str], sizes: Sequence[tuple[int, int]], *, field: str,
               small_images: str = "error", cache: bool = False):
    super().__init__(small_images=small_images)
    if len(paths) != len(sizes):
      raise ValueError("paths and sizes must have the same length")
    self.paths = list(paths)
    self.sizes = [(int(h), int(w)) for h, w in sizes]
    self.field = field
    self._cache: dict[int, np.ndarray] | None = {} if cache else None

  def _num_records(self) -> int:
    return len(self.paths)

  def _describe(self, record: int) -> str:
    return self.paths[record]

  def _size(self, record: int) -> tuple[int, int]:
    return self.sizes[record]

  def _read(self, record: int) -> np.ndarray:
    if self._cache is not None and record in self._cache:
      return self._cache[record]
    image = read_image_file(self.paths[record])
    if self._cache is not None:
      image.setflags(write=False)  # shared between calls: nobody may edit it in place
      self._cache[record] = image
    return image


def read_image_file(path: str) -> np.ndarray:
  """Decodes an image file to (H, W, 3) uint8, applying its EXIF orientation."""
  with Image.open(path) as im:
    im.load()
    im = ImageOps.exif_transpose(im)
    return to_rgb_uint8(im, what=path)


def _read_header(path: str) -> tuple[int, int] | None:
  """(height, width) from the header only (PIL defers decoding), or None if unreadable."""
  try:
    with Image.open(path) as im:
      w, h = im.size
  except _DECODE_ERRORS:
    return None
  return (h, w) if h > 0 and w > 0 else None


def _accepted_folder() -> str:
  exts = ", ".join(IMAGE_EXTENSIONS)
  return f"a folder tree of JPEG/PNG images ({exts}, any case, searched recursively)"


def scan_folder(root: str, *, num_threads: int = 16) -> tuple[list[str], list[tuple[int, int]],
                                                             collections.Counter[str]]:
  """Finds the readable images under `root`.

  Args:
    root: the folder to search recursively.
    num_threads: threads reading headers (I/O bound; helps on network file systems).

  Returns:
    (paths sorted by their path relative to root, (height, width) per path, counts of
    "unreadable_at_scan" and "ignored_non_image_files").

  Raises:
    ValueError: naming `data.folder`, if root is missing, not a folder, or has no
      readable image.
  """
  field = "data.folder"
  if not root:
    raise ValueError(f"config field {field} is not set; it must name {_accepted_folder()}")
  if not os.path.exists(root):
    raise ValueError(f"config field {field}: {root!r} does not exist; expected "
                     f"{_accepted_folder()}")
  if not os.path.isdir(root):
    raise ValueError(f"config field {field}: {root!r} is not a folder; expected "
                     f"{_accepted_folder()}")
  candidates, ignored = [], 0
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in filenames:
      if name.lower().endswith(IMAGE_EXTENSIONS):
        candidates.append(os.path.join(dirpath, name))
      else:
        ignored += 1
  # Sort on the relative path so that the order (hence the record indices, hence every
  # batch) is the same on every host, whatever the mount point or walk order.
  candidates.sort(key=lambda p: os.path.relpath(p, root).replace(os.sep, "/"))
  with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    headers = list(pool.map(_read_header, candidates, chunksize=64))
  paths = [p for p, s in zip(candidates, headers, strict=True) if s is not None]
  sizes = [s for s in headers if s is not None]
  stats = collections.Counter(unreadable_at_scan=len(candidates) - len(paths),
                              ignored_non_image_files=ignored)
  if not paths:
    found = (f"its {len(candidates)} image files are all unreadable" if candidates else
             f"it has no image files ({ignored} other files ignored)")
    raise ValueError(f"config field {field}: {root!r} contains no readable images: {found}; "
                     f"expected {_accepted_folder()}")
  if stats["unreadable_at_scan"]:
    logging.warning("%s=%s: skipped %d unreadable image files (e.g. %s)", field, root,
                    stats["unreadable_at_scan"],
                    next(p for p, s in zip(candidates, headers, strict=True) if s is None))
  logging.info("%s=%s: %d images, %d unreadable skipped, %d non-image files ignored", field,
               root, len(paths), stats["unreadable_at_scan"], ignored)
  return paths, sizes, stats


class TfdsImageSource(ImageSource):
  """Images from a prepared TFDS dataset, read with `tfds.data_source` (no TensorFlow).

  The dataset must have been prepared with `file_format="array_record"` (e.g.
  `tfds build NAME --file_format=array_record` in an environment with TensorFlow);
  nothing is downloaded here. Sizes are unknown until decoding, so the small-image
  policy acts per record (see `ImageSource.require_min_size`).

  Args:
    name: TFDS dataset name (config `data.tfds_name`), e.g. "places365_small".
    split: split or slice (config `data.tfds_split`).
    data_dir: TFDS data folder (config `data.tfds_data_dir`), None for TFDS's default.
    image_key: the feature holding the image (config `data.tfds_image_key`).
    small_images: the small-image policy.
  """

  field = "data.tfds_name"

  def __init__(self, name: str, *, split: str = "train", data_dir: str | None = None,
               image_key: str = "image", small_images: str = "error"):
    super().__init__(small_images=small_images)
    if not name:
      raise ValueError("config field data.tfds_name is not set; it must name a TFDS dataset "
                       "prepared in ArrayRecord format, e.g. 'places365_small'")
    try:
      import tensorflow_datasets as tfds  # Imported here: the other sources don't need it.
    except ImportError as e:
      raise ValueError("config field data.source='tfds' needs tensorflow-datasets, an optional "
                       "dependency: pip install 'inpaint_jax[tfds]'") from e

    self.name, self.split, self.image_key = name, split, image_key
    where = f" in data.tfds_data_dir={data_dir!r}" if data_dir else ""
    try:
      # download=False: no run-time downloads; prepare the dataset beforehand.
      self._ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds.core.registered.DatasetNotFoundError as e:
      raise ValueError(f"config field data.tfds_name: {str(e).splitlines()[0]}") from e
    except Exception as e:  # TFDS raises assorted types for unprepared data or bad splits.
      raise ValueError(
          f"config fields data.tfds_name={name!r}, data.tfds_split={split!r}: cannot open the "
          f"dataset{where} for random access ({type(e).__name__}: {str(e).splitlines()[0]}). "
          f"It must be prepared beforehand with file_format='array_record' (e.g. `tfds build "
          f"{name} --file_format=array_record` where TensorFlow is installed)") from e
    if len(self._ds) == 0:
      raise ValueError(f"config fields data.tfds_name={name!r}, data.tfds_split={split!r}: the "
                       f"split is empty")
    first = self._ds[0]
    if image_key not in first:
      raise ValueError(f"config field data.tfds_image_key: {image_key!r} is not a feature of "
                       f"{name!r}; accepted: {', '.join(sorted(first))}")

  def _num_records(self) -> int:
    return len(self._ds)

  def _describe(self, record: int) -> str:
    return f"{self.name}[{self.split}][{record}]"

  def _read(self, record: int) -> np.ndarray:
    return to_rgb_uint8(self._ds[record][self.image_key], what=self._describe(record))


def _get(cfg: Any, key: str, default: Any) -> Any:
  """cfg[key] for a dict or ConfigDict, the default if missing or None."""
  if cfg is None:
    return default
  value = cfg.get(key, default)
  return default if value is None else value


def embedded_photo_folder() -> str:
  """The folder of `skimage.data`, located without importing skimage (no fetcher runs)."""
  spec = importlib.util.find_spec("skimage")
  if spec is None or not spec.submodule_search_locations:
    raise ValueError("config field data.source='embedded' needs scikit-image installed "
                     "(its wheel ships the sample photos); or use 'folder' or 'tfds'")
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


@DATA_SOURCES.register("embedded")
def build_embedded(cfg: Any = None) -> FileImageSource:
  """The real RGB photos shipped in the scikit-image wheel (see `EMBEDDED_PHOTOS`).

  Reads them with PIL from the package folder (never through skimage's fetcher, which
  may download). Files missing from the installed package are left out. The field
  `embedded_split` picks the training photos, the held-out ones or all nine.
  """
  split = _get(cfg, "embedded_split", "all") or "all"
  if split not in EMBEDDED_SPLITS:
    raise ValueError(f"config field data.embedded_split: unknown value {split!r}; accepted: "
                     f"{', '.join(repr(s) for s in EMBEDDED_SPLITS)}")
  names = [n for n in EMBEDDED_PHOTOS
           if split == "all" or (n in EMBEDDED_HELD_OUT) == (split == "held_out")]
  folder = embedded_photo_folder()
  paths, sizes = [], []
  for name in names:
    size = _read_header(os.path.join(folder, name))
    if size is not None:
      paths.append(os.path.join(folder, name))
      sizes.append(size)
  if not paths:
    raise ValueError(f"config field data.source='embedded': none of the sample photos "
                     f"{', '.join(EMBEDDED_PHOTOS)} is in {folder}; use 'folder' or 'tfds'")
  return FileImageSource(paths, sizes, field="data.source='embedded'",
                         small_images=_get(cfg, "small_images", "error"), cache=True)


@DATA_SOURCES.register("folder")
def build_folder(cfg: Any) -> FileImageSource:
  """All readable JPEG/PNG files under `data.folder` (recursive, sorted)."""
  policy = _check_policy(_get(cfg, "small_images", "error"))
  root = _get(cfg, "folder", "")
  paths, sizes, stats = scan_folder(os.fspath(root))
  source = FileImageSource(paths, sizes, field="data.folder", small_images=policy)
  source.stats.update(stats)
  return source


@DATA_SOURCES.register("tfds")
def build_tfds(cfg: Any) -> TfdsImageSource:
  """A TFDS dataset through `tfds.data_source` (ArrayRecord, no TensorFlow)."""
  return TfdsImageSource(
      _get(cfg, "tfds_name", ""), split=_get(cfg, "tfds_split", "train"),
      data_dir=_get(cfg, "tfds_data_dir", "") or None,
      image_key=_get(cfg, "tfds_image_key", "image"),
      small_images=_get(cfg, "small_images", "error"))


def build_source(cfg: Any = None, *, min_size: int | None = None) -> ImageSource:
  """Builds the source named by `cfg.source` (default "embedded").

  Args:
    cfg: the `data` config section (ConfigDict or dict), or None for all defaults.
    min_size: if given, the crop size: applies the `data.small_images` policy now (the
      pipeline also does this itself with its `image_size`).

  Returns:
    An `ImageSource`.

  Raises:
    ValueError: for an unknown source name (naming `data.source`) or bad source fields.
  """
  _check_policy(_get(cfg, "small_images", "error"))
  builder = DATA_SOURCES.get(_get(cfg, "source", "embedded"), field="data.source")
  source = builder(cfg)
  source.resize_shorter(int(_get(cfg, "shorter_side", 0) or 0))
  if min_size is not None:
    source.require_min_size(min_size)
  return source
