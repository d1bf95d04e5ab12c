r"""Scores any system's inpainting results: `python -m inpaint_jax.evaluate`.

  python -m inpaint_jax.evaluate --predictions DIR --targets DIR [--masks DIR] \
      --output FILE.json [--metrics psnr,ssim,l1,lpips,fid]
  python -m inpaint_jax.evaluate --baseline opencv_telea --targets DIR --masks DIR \
      --output FILE.json

Files are matched by name without extension (`a.png` in --predictions goes with `a.jpg`
in --targets and `a.png` in --masks), or in LaMa's layout, as `python -m inpaint_jax.inpaint`
writes its results: `a_mask000.png` in --predictions goes with `a.png` in --targets and
`a_mask000.png` in --masks, and --targets and --masks may be the inpaint command's input
folder (see `inpaint_jax.evaluation.folders`). Every name must be found where it belongs and
each pair must have one size, else the command stops with a one-line error that lists the
offending names (exit code 2). Images are read as 8-bit RGB and scaled to [0, 1]; masks
are binarised at 128 (255 = hole). The predictions are scored as given (for LaMa-style
results that is the composite).

With `--baseline` (opencv_telea, opencv_ns, mean_fill) the predictions are made from the
targets and masks by that classical method instead of read from a folder.

Output: FILE.json with the means (`psnr`, `ssim`, `l1`, `lpips`, `fid`), `n_images`,
per hole-area bin values under `bins` (with --masks), and per-image values; next to it
FILE.md (the table) and FILE.png (the report picture). LPIPS and FID need converted
weights (`--lpips_weights`, `--inception_weights`, written by `python -m
inpaint_jax.convert`); without them they are `null` and listed under `unavailable`. Flags
are also accepted in dash-case (`--lpips-weights`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from inpaint_jax import errors
from inpaint_jax.data.mask_sets import MaskSetError
from inpaint_jax.evaluation import baselines, scoring
from inpaint_jax.evaluation.folders import InputError, evaluate

_DESCRIPTION = """\
Score inpainting results against targets, files matched by name without extension, or in
LaMa's layout as the inpaint command writes them (result NAME_mask000.png, target NAME.png,
mask NAME_mask000.png). Writes FILE.json, FILE.md and FILE.png."""

_EPILOG = """\
examples:
  python -m inpaint_jax.evaluate --predictions out/ --targets gt/ --masks masks/ \\
      --output scores.json
  python -m inpaint_jax.evaluate --predictions out/ --targets in/ --masks in/ \\
      --output scores.json            (in/: the input folder of inpaint --input_dir)
  python -m inpaint_jax.evaluate --baseline opencv_telea --targets gt/ --masks masks/ \\
      --output telea.json"""


def make_parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser("python -m inpaint_jax.evaluate", _DESCRIPTION, epilog=_EPILOG)
  p.add_argument("--predictions", metavar="DIR", help="folder of results to score")
  p.add_argument("--targets", required=True, metavar="DIR", help="folder of ground-truth images")
  p.add_argument("--masks", metavar="DIR",
                 help="folder of masks (255 = hole), for hole-area bins; needed by --baseline")
  p.add_argument("--output", required=True, metavar="FILE.json",
                 help="results FILE.json (FILE.md and FILE.png next to it)")
  p.add_argument("--metrics", default=",".join(scoring.METRICS), metavar="LIST",
                 help=f"comma-separated, from {','.join(scoring.METRICS)}")
  p.add_argument("--baseline", metavar="NAME",
                 help=f"fill the masks with a classical method ({', '.join(baselines.BASELINES)})"
                      " instead of reading --predictions")
  p.add_argument("--lpips_weights", metavar="FILE.npz",
                 help="converted LPIPS weights (python -m inpaint_jax.convert lpips); "
                      "without: LPIPS unavailable")
  p.add_argument("--inception_weights", metavar="FILE.npz",
                 help="converted FID Inception weights (python -m inpaint_jax.convert "
                      "inception); without: FID unavailable")
  p.add_argument("--ssim_mode", default="skimage", choices=("skimage", "lama"),
                 help="scikit-image's SSIM, or LaMa's zero-padded one")
  p.add_argument("--batch_size", type=int, default=16, metavar="N",
                 help="images per metric call")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  p = make_parser()
  args = p.parse_args(argv)
  try:
    evaluate(args.targets, args.output, predictions=args.predictions, masks=args.masks,
             metrics=args.metrics, baseline=args.baseline, lpips_weights=args.lpips_weights,
             inception_weights=args.inception_weights, ssim_mode=args.ssim_mode,
             batch_size=args.batch_size)
  except (InputError, MaskSetError, ValueError, RuntimeError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
