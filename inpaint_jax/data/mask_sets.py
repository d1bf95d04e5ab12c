r"""Fixed evaluation mask sets: presets, the PNG writer and the reader.

`write(preset, n, size, seed, output)` (the command `python -m inpaint_jax.masks`) writes
N masks `000000.png`, `000001.png`, ... (8-bit grey, 255 = hole, 0 = known) and
`maskset.json` (preset, size, seed, generator settings, hole fractions). The files depend
only on (preset, size, seed): mask i is drawn from `numpy.random.default_rng([seed, i])`,
so a set of N masks is the prefix of a bigger set with the same seed, on every machine.

Presets (S is `--size`):

* `thin_256`, `medium_256`, `thick_256`, `thin_512`, `medium_512`, `thick_512`: LaMa's
  evaluation generators (`configs/data_gen/random_*.yaml`, see `inpaint_jax.data.masks`)
  with the filter of LaMa's `bin/gen_mask_dataset.py`: a mask covering more than half of
  the image (`max_tamper_area 0.5`) or nothing at all is dropped and drawn again. LaMa draws
  on the image resized to shorter side 256 / 512 and then crops a square around the mask;
  here the mask is drawn directly on the S x S square (the same thing for square images).
  Stroke sizes are in pixels, as configured, whatever S is.
* `irregular_10_20`, ..., `irregular_50_60`: free-form strokes (LaMa's training stroke
  generator, lengths and widths scaled by S / 256) kept only if the hole fraction lies in
  [lo, hi) percent; the bins of the DGFNet / AOT-GAN tables.
* `square_10_20`, ..., `square_50_60`: one axis-aligned square hole at a uniform
  position, its area fraction uniform in [lo, hi) percent.

Any folder of mask images is a mask set too (`read_mask_dir`): PNG / JPEG / BMP files,
read as grey and binarised at 128 (so anti-aliased or JPEG masks still work), 255 = hole.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from inpaint_jax.data import image_io
from inpaint_jax.data import masks as mask_gen

RATIO_BINS = ((10, 20), (20, 30), (30, 40), (40, 50), (50, 60))
LAMA_SETS = ("thin", "medium", "thick")
MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_MAX_TAMPER_AREA = 0.5    # bin/gen_mask_dataset.py, configs/data_gen/random_*.yaml
_MAX_TRIES = 10_000       # draws per mask before giving up (acceptance is >= 2% for all)

# A sampler draws one candidate mask per generator: (len(rngs), S, S) float32 in {0, 1}.
Sampler = Callable[[Sequence[np.random.Generator], int], np.ndarray]


class MaskSetError(ValueError):
  """A bad preset, folder or mask file; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named mask-set recipe.

  Attributes:
    name: the preset name (`--preset`).
    sampler: draws candidates (see `Sampler`).
    accept: (hole fraction) -> keep the candidate?
    description: settings, written into `maskset.json`.
  """

  name: str
  sampler: Sampler
  accept: Callable[[float], bool]
  description: dict[str, Any]


def _lama_preset(kind: str, native: int) -> Preset:
  gen = mask_gen.build({"kind": f"lama_{kind}_{native}"})
  return Preset(
      name=f"{kind}_{native}",
      sampler=lambda rngs, size: gen.sample_many(rngs, size, size),
      accept=lambda area: 0 < area <= _MAX_TAMPER_AREA,
      description={"generator": f"lama_{kind}_{native}", "max_area": _MAX_TAMPER_AREA,
                   "params": dataclasses.asdict(gen)})


def _irregular_preset(lo: int, hi: int) -> Preset:
  def sampler(rngs, size):
    scale = size / 256
    gen = mask_gen.MixedMaskGenerator(
        mask_gen.IrregularMaskParams(max_len=max(1, round(200 * scale)),
                                     max_width=max(1, round(100 * scale)),
                                     min_times=1, max_times=5),
        irregular_prob=1.0, box_prob=0.0)
    return gen.sample_many(rngs, size, size)

  return Preset(name=f"irregular_{lo}_{hi}", sampler=sampler,
                accept=lambda area: lo / 100 <= area < hi / 100,
                description={"generator": "lama_irregular strokes, max_len 200*S/256, "
                             "max_width 100*S/256, 1-6 strokes", "hole_range": [lo, hi]})


def _square_preset(lo: int, hi: int) -> Preset:
  def sampler(rngs, size):
    out = np.zeros((len(rngs), size, size), np.float32)
    for i, rng in enumerate(rngs):
      frac, u_y, u_x = rng.random(3)
      area = lo / 100 + (hi - lo) / 100 * frac
      side = min(size, max(1, round(size * np.sqrt(area))))
      y, x = int(u_y * (size - side + 1)), int(u_x * (size - side + 1))
      out[i, y:y + side, x:x + side] = 1
    return out

  # Rounding the side can leave the area just outside the bin; such draws are redrawn.
  return Preset(name=f"square_{lo}_{hi}", sampler=sampler,
                accept=lambda area: lo / 100 <= area < hi / 100,
                description={"generator": "one square, area fraction uniform in the bin",
                             "hole_range": [lo, hi]})


PRESETS: dict[str, Preset] = {}
for _kind in LAMA_SETS:
  for _native in (256, 512):
    PRESETS[f"{_kind}_{_native}"] = _lama_preset(_kind, _native)
for _lo, _hi in RATIO_BINS:
  PRESETS[f"irregular_{_lo}_{_hi}"] = _irregular_preset(_lo, _hi)
for _lo, _hi in RATIO_BINS:
  PRESETS[f"square_{_lo}_{_hi}"] = _square_preset(_lo, _hi)


def get_preset(name: str, field: str = "--preset") -> Preset:
  if name not in PRESETS:
    raise MaskSetError(f"{field}: unknown mask preset {name!r}; accepted: {', '.join(PRESETS)}")
  return PRESETS[name]


def generate(preset: str, n: int, size: int, seed: int) -> np.ndarray:
  """The masks of a preset set, as written by the command.

  Args:
    preset: a name in `PRESETS`.
    n: number of masks.
    size: side S of the square masks.
    seed: the set's seed; mask i is drawn from `default_rng([seed, i])`.

  Returns:
    (n, S, S) uint8 in {0, 1}, 1 = hole.
  """
  p = get_preset(preset)
  if n < 0 or size < 1 or seed < 0:
    raise MaskSetError(f"need --n >= 0, --size >= 1 and --seed >= 0, got {n}, {size}, {seed}")
  out = np.zeros((n, size, size), np.uint8)
  rngs = [np.random.default_rng([seed, i]) for i in range(n)]
  pending = np.arange(n)
  for _ in range(_MAX_TRIES):
    if pending.size == 0:
      return out
    # Each pending mask redraws from its own generator, so mask i never depends on n.
    try:
      cand = p.sampler([rngs[i] for i in pending], size)
    except ValueError as e:   # e.g. the preset's boxes do not fit a small --size
      raise MaskSetError(f"--preset {preset} at --size {size}: {e}") from None
    areas = cand.reshape(len(pending), -1).mean(axis=1)
    ok = np.array([p.accept(float(a)) for a in areas], bool)
    out[pending[ok]] = cand[ok].astype(np.uint8)
    pending = pending[~ok]
  raise MaskSetError(f"--preset {preset}: {pending.size} masks found no accepted draw at "
                     f"--size {size} in {_MAX_TRIES} tries")


def write(preset: str, n: int, size: int, seed: int, output: str) -> dict[str, Any]:
  """Writes `generate(...)` as PNGs plus `maskset.json` into `output`; returns the metadata."""
  masks = generate(preset, n, size, seed)
  os.makedirs(output, exist_ok=True)
  for i, m in enumerate(masks):
    Image.fromarray(m * 255, mode="L").save(os.path.join(output, f"{i:06d}.png"))
  areas = masks.reshape(n, -1).mean(axis=1) if n else np.zeros(0)
  meta = {"preset": preset, "n": n, "size": size, "seed": seed, "convention": "255 = hole",
          "hole_fraction_mean": float(areas.mean()) if n else None,
          "hole_fraction_min": float(areas.min()) if n else None,
          "hole_fraction_max": float(areas.max()) if n else None,
          "settings": PRESETS[preset].description}
  with open(os.path.join(output, "maskset.json"), "w") as f:
    json.dump(meta, f, indent=1, default=str)
  return meta


def list_mask_files(folder: str, field: str = "--masks") -> list[str]:
  """Sorted mask image file names in `folder` (no recursion)."""
  if not os.path.isdir(folder):
    raise MaskSetError(f"{field}: {folder!r} is not a folder; give a folder of mask images "
                       f"({', '.join(MASK_EXTENSIONS)}) or a preset ({', '.join(PRESETS)})")
  names = sorted(f for f in os.listdir(folder) if f.lower().endswith(MASK_EXTENSIONS))
  if not names:
    raise MaskSetError(f"{field}: no mask images ({', '.join(MASK_EXTENSIONS)}) in {folder!r}")
  return names


def read_mask(path: str) -> np.ndarray:
  """One mask file of a mask set as (H, W) uint8 in {0, 1}: grey >= 128 is a hole."""
  hole = image_io.read_mask(path, "mask file", above=image_io.MASK_SET_THRESHOLD)
  return hole[..., 0].astype(np.uint8)


def read_mask_dir(folder: str, field: str = "--masks") -> dict[str, np.ndarray]:
  """All masks of a folder: {file name: (H, W) uint8 in {0, 1}}, sorted by name."""
  return {name: read_mask(os.path.join(folder, name))
          for name in list_mask_files(folder, field)}
