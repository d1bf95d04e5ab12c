r"""Scores any system's inpainting results: `python -m inpaint_jax.evaluate`.

  python -m inpaint_jax.evaluate --predictions DIR --targets DIR [--masks DIR] \
      --output FILE.json [--metrics psnr,ssim,l1,lpips,fid]
  python -m inpaint_jax.evaluate --baseline opencv_telea --targets DIR --masks DIR \
      --output FILE.json

Files are matched by name without extension (`a.png` in --predictions goes with `a.jpg`
in --targets and `a.png` in --masks); every name must be in every folder and each pair
must have one size, else the command stops with a one-line error that lists the
offending names (exit code 2). Images are read as 8-bit RGB and scaled to [0, 1]; masks
are binarised at 128 (255 = hole). The predictions are scored as given (for LaMa-style
results that is the composite).

With `--baseline` (opencv_telea, opencv_ns, mean_fill) the predictions are made from the
targets and masks by that classical method instead of read from a folder.

Output: FILE.json with the means (`psnr`, `ssim`, `l1`, `lpips`, `fid`), `n_images`,
per hole-area bin values under `bins` (with --masks), and per-image values; next to it
FILE.md (the table) and FILE.png (the report picture). LPIPS and FID need converted
weights (`--lpips-weights`, `--inception-weights`, written by `python -m
inpaint_jax.convert`); without them they are `null` and listed under `unavailable`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from inpaint_jax.data.mask_sets import MaskSetError
from inpaint_jax.evaluation import baselines, scoring
from inpaint_jax.evaluation.folders import InputError, evaluate


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors (exit code 2) instead of the usage block."""

  def error(self, message: str) -> NoReturn:
    self.exit(2, f"error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
  p = _Parser(prog="python -m inpaint_jax.evaluate",
              description="Score inpainting results against targets, matched by file name.")
  p.add_argument("--predictions", help="folder of results to score")
  p.add_argument("--targets", required=True, help="folder of ground-truth images")
  p.add_argument("--masks", help="folder of masks (255 = hole), for hole-area bins")
  p.add_argument("--output", required=True, help="results FILE.json (.md, .png next to it)")
  p.add_argument("--metrics", default=",".join(scoring.METRICS),
                 help=f"comma-separated, from {','.join(scoring.METRICS)} (default: all)")
  p.add_argument("--baseline", help=f"fill the masks with one of {', '.join(baselines.BASELINES)}"
                 " instead of reading --predictions")
  p.add_argument("--lpips-weights", help="converted LPIPS weights (python -m "
                 "inpaint_jax.convert lpips)")
  p.add_argument("--inception-weights", help="converted FID Inception weights (python -m "
                 "inpaint_jax.convert inception)")
  p.add_argument("--ssim-mode", default="skimage", choices=("skimage", "lama"))
  p.add_argument("--batch-size", type=int, default=16)
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
