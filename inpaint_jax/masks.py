r"""`python -m inpaint_jax.masks --preset NAME --n N --size S --seed K --output DIR`.

Writes a fixed, deterministic evaluation mask set as PNGs (255 = hole) and `maskset.json`;
the presets and the reader are in `inpaint_jax.data.mask_sets`.

With `--images DIR` it writes the input folder of `python -m inpaint_jax.inpaint
--input_dir` instead, as LaMa's `bin/gen_mask_dataset.py` does: image i of DIR (sorted by
name) resized to shorter side S and centre-cropped (bicubic, as `eval_mode` prepares its
images) as `NAME.png`, beside mask i of the set as `NAME_mask000.png`. The chain is then

  python -m inpaint_jax.masks --preset thick_256 --size 256 --images photos/ --output in/
  python -m inpaint_jax.inpaint --checkpoint MODEL --input_dir in/ --output_dir out/
  python -m inpaint_jax.evaluate --predictions out/ --targets in/ --masks in/ \
      --output scores.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

from inpaint_jax import errors
from inpaint_jax.data import image_io
from inpaint_jax.data.mask_sets import PRESETS, MaskSetError, get_preset, write

_DESCRIPTION = """\
Write a fixed, deterministic evaluation mask set as PNGs (255 = hole) and maskset.json: mask
i depends only on (preset, size, seed, i). With --images, write the input folder of the
inpaint command instead: each image cropped to SIZE x SIZE as NAME.png, its mask as
NAME_mask000.png."""

_EPILOG = """\
examples:
  python -m inpaint_jax.masks --preset thick_256 --n 2000 --size 256 --output masks/thick_256
  python -m inpaint_jax.masks --preset thick_256 --size 256 --images photos/ --output in/"""

MASK_SUFFIX = "_mask000"   # inpaint's folder layout: NAME.png + NAME_mask000.png


def make_parser() -> errors.ArgumentParser:
  p = errors.ArgumentParser("python -m inpaint_jax.masks", _DESCRIPTION, epilog=_EPILOG)
  p.add_argument("--preset", required=True, metavar="NAME", help=f"one of: {', '.join(PRESETS)}")
  p.add_argument("--n", type=int, metavar="N",
                 help="number of masks (required; with --images default: every image)")
  p.add_argument("--size", type=int, required=True, metavar="S", help="mask side in pixels")
  p.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the set")
  p.add_argument("--output", required=True, metavar="DIR", help="folder to write into")
  p.add_argument("--images", metavar="DIR",
                 help="write inpaint's input folder for these images (NAME.png + "
                      "NAME_mask000.png), images cropped to S x S")
  return p


def list_images(folder: str) -> list[str]:
  """Sorted image file names directly in `folder`; a UserError says what is wrong."""
  if not os.path.isdir(folder):
    raise errors.UserError(f"--images {folder}: no such folder")
  names = sorted(f for f in os.listdir(folder)
                 if f.lower().endswith(image_io.IMAGE_EXTENSIONS)
                 and os.path.isfile(os.path.join(folder, f)))
  if not names:
    raise errors.UserError(f"--images {folder}: no image files "
                           f"({', '.join(image_io.IMAGE_EXTENSIONS)})")
  # The inpaint command reads every *mask*.png of its input folder as a mask.
  bad = [f for f in names if "mask" in f.lower()]
  if bad:
    raise errors.UserError(f"--images {folder}: file names with 'mask' ({', '.join(bad[:4])}) "
                           f"would be read as masks by inpaint's folder mode; accepted: image "
                           f"names without 'mask'")
  stems = [os.path.splitext(f)[0] for f in names]
  dupes = sorted({s for s in stems if stems.count(s) > 1})
  if dupes:
    raise errors.UserError(f"--images {folder}: several files share a name "
                           f"({', '.join(dupes[:4])}); accepted: one file per name")
  return names


def write_lama_folder(preset: str, n: int | None, size: int, seed: int, images: str,
                      output: str) -> dict:
  """Writes OUT/NAME.png (cropped image i) + OUT/NAME_mask000.png (mask i) + maskset.json."""
  if os.path.abspath(images) == os.path.abspath(output):
    raise errors.UserError(f"--output {output}: must differ from --images (the images are "
                           f"written there cropped to --size)")
  get_preset(preset)
  names = list_images(images)
  if n is not None:
    if n < 1 or n > len(names):
      raise errors.UserError(f"--n {n}: --images {images} has {len(names)} image(s); "
                             f"accepted: 1 to {len(names)}")
    names = names[:n]
  # Read every image first: a broken file stops the command before anything is written.
  crops = {}
  for f in names:
    with errors.as_user_errors():
      pixels = image_io.read_image(os.path.join(images, f), "--images")
    crops[os.path.splitext(f)[0]] = image_io.center_square(
        np.round(pixels * 255).astype(np.uint8), size)
  os.makedirs(output, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=output) as tmp:
    meta = write(preset, len(names), size, seed, tmp)
    for i, stem in enumerate(crops):
      os.replace(os.path.join(tmp, f"{i:06d}.png"),
                 os.path.join(output, f"{stem}{MASK_SUFFIX}.png"))
  for stem, pixels in crops.items():
    Image.fromarray(pixels).save(os.path.join(output, stem + ".png"))
  meta.update({"layout": "NAME.png + NAME_mask000.png (inpaint --input_dir)",
               "images": images, "names": list(crops)})
  with open(os.path.join(output, "maskset.json"), "w") as f:
    json.dump(meta, f, indent=1, default=str)
  return meta


def main(argv: Sequence[str] | None = None) -> int:
  args = make_parser().parse_args(argv)
  try:
    if args.images is not None:
      meta = write_lama_folder(args.preset, args.n, args.size, args.seed, args.images,
                               args.output)
    elif args.n is None:
      raise errors.UserError("--n is required (or --images DIR: one mask per image)")
    else:
      meta = write(args.preset, args.n, args.size, args.seed, args.output)
  except (MaskSetError, errors.UserError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  what = (f"and their {meta['n']} images cropped to {args.size}x{args.size} as NAME.png + "
          f"NAME_mask000.png " if args.images is not None else "")
  print(f"wrote {meta['n']} masks ({args.preset}, {args.size}x{args.size}, seed {args.seed}, "
        f"mean hole fraction {meta['hole_fraction_mean']}) {what}to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
