"""Reading images and masks, and writing results, with one-line refusals.

Convention (every family): image RGB float32 (H, W, 3) in [0, 1]; mask float32 (H, W, 1) with
1 = hole. From files:
  image  any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, ...): grayscale is repeated to
         RGB, alpha is dropped, palettes are expanded, 16-bit is scaled by 1/65535, 8-bit by
         1/255 (as LaMa's `predict.py`), EXIF orientation is applied (unless only the stored
         pixels match the mask's size); or `.npy` float (H, W, 3) in [0, 1].
  mask   the same formats; for inference a pixel is a hole when any colour channel is
         non-zero (soft, gray and RGB masks are binarised like LaMa's `mask > 0`), for
         evaluation mask sets when it reaches 128 (`read_mask`'s `above`); or `.npy` (H, W) /
         (H, W, 1), non-zero = hole.
Results: `.npy` float32 (H, W, 3) as computed; image formats `clip(x * 255)` truncated to
uint8 (as LaMa's `predict.py`).

Errors are `UserError`s whose message names the flag and file, what was wrong and what is
accepted.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inpaint_jax.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ACCEPTED = "PNG, JPEG, BMP, TIFF, WebP (anything Pillow reads) or .npy"


def _check_file(path: str, flag: str) -> None:
  if not os.path.exists(path):
    raise UserError(f"{flag} {path}: no such file")
  if os.path.isdir(path):
    raise UserError(f"{flag} {path}: is a folder, not a file (accepted: {ACCEPTED})")
  if os.path.getsize(path) == 0:
    raise UserError(f"{flag} {path}: the file is empty (0 bytes); accepted: {ACCEPTED}")


def _png_bit_depth(path: str) -> int | None:
  with open(path, "rb") as f:
    head = f.read(26)
  if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 25:
    return head[24]
  return None


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
  """Applies an EXIF orientation (1..8) to an (H, W, ...) array, like ImageOps.exif_transpose."""
  t = lambda a: np.swapaxes(a, 0, 1)
  ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
         5: t, 6: lambda a: np.rot90(a, -1), 7: lambda a: t(a)[::-1, ::-1],
         8: lambda a: np.rot90(a, 1)}
  return np.ascontiguousarray(ops.get(orientation, lambda a: a)(array))


def _open(path: str, flag: str, exif: bool = True) -> tuple[np.ndarray, float]:
  """Decodes `path` to (array (H, W) or (H, W, C) with alpha dropped, full-scale value).

  `exif`: apply the EXIF orientation (the displayed image); False: the stored pixels.
  """
  _check_file(path, flag)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # palette-transparency notices
      with Image.open(path) as im:
        im.load()
        orientation = im.getexif().get(0x0112, 1) if exif else 1
        sixteen = (_png_bit_depth(path) == 16 and im.mode in ("RGB", "RGBA")) or (
            im.format == "TIFF" and im.mode in ("RGB", "RGBA") and
            getattr(im, "tag_v2", {}).get(258, (8,))[0] == 16)
        if sixteen:
          import cv2  # pylint: disable=g-import-not-at-top  (Pillow reads 16-bit RGB as 8-bit)
          raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
          if raw is None or raw.dtype != np.uint16:
            raise OSError("cannot decode the 16-bit colour image")
          rgb = raw[..., 2::-1] if raw.ndim == 3 else raw
          return _orient(rgb, orientation), 65535.0
        if exif:
          im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
          return np.asarray(im, dtype=np.float64).clip(0, 65535), 65535.0
        if mode == "F":
          return np.asarray(im, dtype=np.float64).clip(0, 1), 1.0
        if mode in ("1", "L"):
          return np.asarray(im.convert("L")), 255.0
        if mode == "LA":
          return np.asarray(im.convert("L")), 255.0
        if mode in ("P", "PA"):
          im = im.convert("RGBA")
        return np.asarray(im.convert("RGB")), 255.0
  except UserError:
    raise
  except UnidentifiedImageError as e:
    raise UserError(f"{flag} {path}: not an image file; accepted: {ACCEPTED}") from e
  except Image.DecompressionBombError as e:
    raise UserError(f"{flag} {path}: the image is too large to decode safely ({e})") from e
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise UserError(f"{flag} {path}: the image file is truncated or corrupt ({e}); accepted: "
                    f"a complete {ACCEPTED} file") from e


def _load_npy(path: str, flag: str) -> np.ndarray:
  _check_file(path, flag)
  try:
    return np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise UserError(f"{flag} {path}: not a readable .npy array ({e})") from e


def read_image(path: str, flag: str = "--image", exif: bool = True) -> np.ndarray:
  """The image as float32 (H, W, 3) RGB in [0, 1] (`exif`: as displayed)."""
  if path.lower().endswith(".npy"):
    a = _load_npy(path, flag)
    if a.ndim != 3 or a.shape[-1] != 3 or not np.issubdtype(a.dtype, np.floating):
      raise UserError(f"{flag} {path}: got a {a.dtype} array of shape {a.shape}; accepted: "
                      f"float (H, W, 3) RGB in [0, 1]")
    if not np.all(np.isfinite(a)) or a.min(initial=0) < 0 or a.max(initial=0) > 1:
      raise UserError(f"{flag} {path}: values outside [0, 1] (or not finite); accepted: float "
                      f"(H, W, 3) RGB in [0, 1]")
    return np.ascontiguousarray(a, dtype=np.float32)
  a, scale = _open(path, flag, exif)
  if a.ndim == 2:
    a = np.repeat(a[..., None], 3, axis=-1)
  if scale == 255.0:
    return a.astype(np.float32) / 255  # bit for bit LaMa's `img.astype('float32') / 255`
  return (a.astype(np.float64) / scale).astype(np.float32)


_warned_soft_masks: set[str] = set()


def read_mask(path: str, flag: str = "--mask", *, above: float = 0.0) -> np.ndarray:
  """A mask as float32 (H, W, 1) in {0, 1}, 1 = hole: every reader of mask files uses this.

  Args:
    path: an image file (any format `read_image` takes) or, for inference, a `.npy` (H, W) /
      (H, W, 1) array whose non-zero values are holes.
    flag: the flag or config field that named the file, for messages.
    above: a pixel is a hole when its largest colour channel exceeds `above` times the full
      scale (255 for 8-bit files). Inference keeps LaMa's `mask > 0` (0.0, the default);
      evaluation mask sets binarise at 128 (`MASK_SET_THRESHOLD`), so anti-aliased or JPEG
      masks keep their shape.

  A mask file with values other than 0 and full scale is accepted, with one warning per
  process naming the file: JPEG artifacts around a stroke grow the hole at low thresholds.
  """
  if path.lower().endswith(".npy"):
    a = _load_npy(path, flag)
    if a.ndim == 3 and a.shape[-1] == 1:
      a = a[..., 0]
    if a.ndim != 2 or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
      raise UserError(f"{flag} {path}: got a {a.dtype} array of shape {a.shape}; accepted: "
                      f"(H, W) or (H, W, 1), 1 = hole")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
      raise UserError(f"{flag} {path}: the mask has non-finite values; accepted: (H, W) or "
                      f"(H, W, 1) in [0, 1], 1 = hole")
    return (a > 0).astype(np.float32)[..., None]
  a, scale = _open(path, flag)
  grey = a if a.ndim == 2 else np.max(a, axis=-1)
  if not _warned_soft_masks and np.any((grey != 0) & (grey != scale)):
    _warned_soft_masks.add(path)
    warnings.warn(f"{flag} {path}: the mask holds values other than 0 and {scale:g} (soft "
                  f"edges or JPEG artifacts); pixels above {above * scale:g} count as hole",
                  stacklevel=2)
  return (grey > above * scale).astype(np.float32)[..., None]


# Evaluation mask sets: a pixel is a hole at grey >= 128 of 255.
MASK_SET_THRESHOLD = 127.0 / 255.0


def read_pair(image_path: str, mask_path: str, image_flag: str = "--image",
              mask_flag: str = "--mask") -> tuple[np.ndarray, np.ndarray]:
  """(image, mask), checked to have the same size.

  The image is taken as displayed (EXIF orientation applied); when only its stored pixels
  match the mask's size (a mask drawn on the un-rotated photo), those are used instead.
  """
  image = read_image(image_path, image_flag)
  mask = read_mask(mask_path, mask_flag)
  if image.shape[:2] != mask.shape[:2] and not image_path.lower().endswith(".npy"):
    stored = read_image(image_path, image_flag, exif=False)
    if stored.shape[:2] == mask.shape[:2]:
      image = stored
  check_same_size(image, mask, image_path, mask_path, image_flag, mask_flag)
  return image, mask


def check_same_size(image: np.ndarray, mask: np.ndarray, image_path: str, mask_path: str,
                    image_flag: str = "--image", mask_flag: str = "--mask") -> None:
  if image.shape[:2] != mask.shape[:2]:
    (h, w), (mh, mw) = image.shape[:2], mask.shape[:2]
    raise UserError(f"{mask_flag} {mask_path}: the mask is {mw}x{mh} but {image_flag} "
                    f"{image_path} is {w}x{h}; accepted: a mask of the image's size")


def to_uint8(x: np.ndarray) -> np.ndarray:
  """LaMa's `np.clip(x * 255, 0, 255).astype('uint8')` (truncation, not rounding)."""
  return np.clip(x * 255, 0, 255).astype(np.uint8)


def check_output_path(path: str, flag: str = "--output") -> None:
  ext = os.path.splitext(path)[1].lower()
  if ext != ".npy" and ext not in IMAGE_EXTENSIONS:
    raise UserError(f"{flag} {path}: unknown output format {ext or '(no extension)'!r}; "
                    f"accepted: .npy, {', '.join(IMAGE_EXTENSIONS)}")


def write_result(path: str, composite: np.ndarray, flag: str = "--output") -> None:
  """Writes the composite (H, W, 3) float: `.npy` float32 as is, images as uint8."""
  check_output_path(path, flag)
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  if path.lower().endswith(".npy"):
    np.save(path, np.asarray(composite, np.float32))
  else:
    Image.fromarray(to_uint8(np.asarray(composite))).save(path)


def center_square(image: np.ndarray, size: int) -> np.ndarray:
  """(H, W, 3) uint8 -> (size, size, 3) uint8: shorter side to `size` (bicubic), centre crop.

  How evaluation crops its images, and how `masks --images` writes them, so both see the
  same pixels.
  """
  im = Image.fromarray(image)
  w, h = im.size
  scale = size / min(w, h)
  if (w, h) != (size, size):
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                   Image.Resampling.BICUBIC)
  w, h = im.size
  left, top = (w - size) // 2, (h - size) // 2
  return np.asarray(im.crop((left, top, left + size, top + size)))
