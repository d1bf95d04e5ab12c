"""`python -m inpaint_jax.masks --preset NAME --n N --size S --seed K --output DIR`.

Writes a fixed, deterministic evaluation mask set as PNGs (255 = hole) and `maskset.json`;
the presets and the reader are in `inpaint_jax.data.mask_sets`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from inpaint_jax.data.mask_sets import PRESETS, MaskSetError, write


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m inpaint_jax.masks",
      description="Write a fixed, deterministic evaluation mask set as PNGs (255 = hole).")
  parser.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
  parser.add_argument("--n", type=int, required=True, help="number of masks")
  parser.add_argument("--size", type=int, required=True, help="mask side in pixels")
  parser.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
  parser.add_argument("--output", required=True, help="folder to write into")
  args = parser.parse_args(argv)
  try:
    meta = write(args.preset, args.n, args.size, args.seed, args.output)
  except MaskSetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {meta['n']} masks ({args.preset}, {args.size}x{args.size}, seed {args.seed}, "
        f"mean hole fraction {meta['hole_fraction_mean']}) to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
